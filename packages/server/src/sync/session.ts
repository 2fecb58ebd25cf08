/**
 * One WebSocket of the sync protocol. The client's state is a version
 * `{querySet, identity, ts}`; every Transition moves it from the version the client holds
 * (startVersion) to a new one, carrying the results that changed, all valid at the new ts.
 *
 *   awaiting Connect ──Connect──▶ connected ──ModifyQuerySet / Authenticate──▶ (dirty) ──flush──▶ Transition
 *                                    │  Mutation ──(in order)──▶ MutationResponse, then a Transition at ≥ its ts
 *                                    │  Action ──▶ ActionResponse
 *                                    └─ protocol violation ──▶ FatalError, close ──▶ closed
 *
 * A client resends unacknowledged mutations after a reconnect with the same (sessionId,
 * requestId); the engine answers those from the mutation log instead of running them again.
 */
import {
  MAX_ARGS_NESTING,
  nestedDeeperThan,
  tooDeepMessage,
  type Engine,
  type MutationOutcome,
} from '@sleigh/engine';
import type { JSONValue } from 'convex/values';
import {
  encodeTs,
  encodeVersion,
  parseClientMessage,
  ProtocolError,
  type AddQuery,
  type ClientMessage,
  type StateVersion,
} from './messages.js';
import {
  ANONYMOUS,
  type Identity,
  type QueryEntry,
  type Subscriber,
  type Subscriptions,
} from './subscriptions.js';

/** What a session needs from the server around it. */
export interface SessionHost {
  readonly engine: Engine;
  readonly subscriptions: Subscriptions;
  checkAdminKey(key: string): boolean;
  /** Waits (briefly) until the server has seen commits up to `ts`; false if it has not. */
  catchUp(ts: bigint): Promise<boolean>;
  /** Fault injection (tests): cut the socket instead of sending a mutation's response. */
  readonly faults?:
    | { beforeMutationResponse?(sessionId: string, requestId: number): 'drop' | undefined }
    | undefined;
}

/** What a session needs from its socket. */
export interface SessionSocket {
  send(text: string): void;
  close(code: number, reason: string): void;
  /** Drops the connection at once, as a network failure would. */
  terminate(): void;
}

/** Transitions bigger than this go out as TransitionChunks (the client reassembles them). */
const CHUNK_SIZE = 5 * 1024 * 1024;

interface SubscribedQuery {
  readonly queryId: number;
  readonly udfPath: string;
  readonly args: JSONValue;
  entry: QueryEntry | null;
  /** The entry version last sent; -1 before the first. */
  sentVersion: number;
  /** A query the server refused outright (a component path): its error, sent once. */
  refused: string | null;
}

let transitionCounter = 0;

export class SyncSession implements Subscriber {
  private state: 'awaiting-connect' | 'connected' | 'closed' = 'awaiting-connect';
  sessionId = '';
  private connectionCount = 0;
  private querySetVersion = 0;
  private identityVersion = 0;
  private identity: Identity = ANONYMOUS;
  private sent: StateVersion = { querySet: 0, identity: 0, ts: 0n };
  private readonly queries = new Map<number, SubscribedQuery>();
  private removed: number[] = [];
  /** After a MutationResponse: the client waits for a Transition, even an empty one. */
  private mustTransition = false;
  private requiredTs = 0n;
  private mutations: Promise<void> = Promise.resolve();
  /** Messages that arrived while Connect was being processed. */
  private pending: Promise<void> = Promise.resolve();
  lastSentAt = Date.now();

  constructor(
    private readonly host: SessionHost,
    private readonly socket: SessionSocket,
  ) {}

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** Open, and no Connect yet. */
  get awaitingConnect(): boolean {
    return this.state === 'awaiting-connect';
  }

  private send(text: string): void {
    if (this.state === 'closed') return;
    this.lastSentAt = Date.now();
    this.socket.send(text);
  }

  /** A protocol violation: say what was wrong, then close; the client reconnects afresh. */
  fail(message: string, code = 1008): void {
    if (this.state === 'closed') return;
    // Messages may quote what the client sent: a long one is cut, not sent back whole.
    const error = message.length > 1000 ? `${message.slice(0, 1000)}… (cut)` : message;
    this.send(JSON.stringify({ type: 'FatalError', error }));
    const reason = Buffer.from(message).subarray(0, 120).toString();
    this.shutdown();
    this.socket.close(code, reason);
  }

  receive(text: string): void {
    if (this.state === 'closed') return;
    let message: ClientMessage;
    try {
      message = parseClientMessage(text);
    } catch (error) {
      this.fail(error instanceof ProtocolError ? error.message : 'Malformed message');
      return;
    }
    // Messages are handled in arrival order; Connect may wait for the server to catch up.
    this.pending = this.pending
      .then(() => this.handle(message))
      .catch((error: unknown) => {
        this.fail(
          error instanceof ProtocolError
            ? error.message
            : `Internal error: ${(error as Error).message}`,
          error instanceof ProtocolError ? 1008 : 1011,
        );
      });
  }

  private async handle(message: ClientMessage): Promise<void> {
    if (this.state === 'closed') return;
    if (this.state === 'awaiting-connect' && message.type !== 'Connect') {
      throw new ProtocolError(`The first message must be Connect, not ${message.type}`);
    }
    switch (message.type) {
      case 'Connect':
        return this.connect(message);
      case 'ModifyQuerySet':
        return this.modifyQuerySet(message);
      case 'Authenticate':
        return this.authenticate(message);
      case 'Mutation':
        this.mutations = this.mutations.then(() => this.mutation(message));
        return;
      case 'Action':
        void this.action(message);
        return;
      case 'Event':
        return;
    }
  }

  private async connect(message: Extract<ClientMessage, { type: 'Connect' }>): Promise<void> {
    if (this.state === 'connected') throw new ProtocolError('Connect was sent twice on one socket');
    this.sessionId = message.sessionId;
    this.connectionCount = message.connectionCount;
    if (
      message.maxObservedTimestamp !== undefined &&
      !(await this.host.catchUp(message.maxObservedTimestamp))
    ) {
      // The client has seen a newer state than this server knows: it must not go back in time.
      this.shutdown();
      this.socket.close(1013, 'ServerBehindClient: this server has not seen the newest state yet');
      return;
    }
    this.state = 'connected';
  }

  private modifyQuerySet(message: Extract<ClientMessage, { type: 'ModifyQuerySet' }>): void {
    if (message.baseVersion !== this.querySetVersion) {
      throw new ProtocolError(
        `ModifyQuerySet.baseVersion ${message.baseVersion} does not match the current query set version ${this.querySetVersion}`,
      );
    }
    if (message.newVersion <= message.baseVersion) {
      throw new ProtocolError('ModifyQuerySet.newVersion must be greater than baseVersion');
    }
    for (const modification of message.modifications) {
      if (modification.type === 'Add') this.addQuery(modification);
      else this.removeQuery(modification.queryId);
    }
    this.querySetVersion = message.newVersion;
    this.host.subscriptions.markDirty(this);
  }

  private addQuery(add: AddQuery): void {
    if (this.queries.has(add.queryId)) {
      throw new ProtocolError(`Query ${add.queryId} was added twice`);
    }
    const query: SubscribedQuery = {
      queryId: add.queryId,
      udfPath: add.udfPath,
      args: add.args[0]!,
      entry: null,
      sentVersion: -1,
      refused: add.componentPath
        ? 'Component functions are not supported by Sleigh'
        : // Refused before its subscription key (the args' JSON) is made.
          nestedDeeperThan(add.args[0], MAX_ARGS_NESTING)
          ? tooDeepMessage(add.udfPath)
          : null,
    };
    if (query.refused === null) {
      query.entry = this.host.subscriptions.subscribe(
        this,
        add.udfPath,
        query.args,
        this.identity,
        add.journal ?? null,
      );
    }
    this.queries.set(add.queryId, query);
    this.removed = this.removed.filter((id) => id !== add.queryId);
  }

  private removeQuery(queryId: number): void {
    const query = this.queries.get(queryId);
    if (query === undefined)
      throw new ProtocolError(`Query ${queryId} was removed but never added`);
    if (query.entry !== null) this.host.subscriptions.unsubscribe(this, query.entry);
    this.queries.delete(queryId);
    this.removed.push(queryId);
  }

  /**
   * Says why the credentials were refused, then closes, as Convex's backend does: the client
   * drops or refetches them and reconnects afresh. Kept open, its next Authenticate would
   * count from an identity version the session never reached, a fatal error.
   */
  private refuseAuth(baseVersion: number, error: string): void {
    this.send(JSON.stringify({ type: 'AuthError', error, baseVersion, authUpdateAttempted: true }));
    this.shutdown();
    this.socket.close(1000, 'AuthError');
  }

  private authenticate(message: Extract<ClientMessage, { type: 'Authenticate' }>): void {
    if (message.baseVersion !== this.identityVersion) {
      throw new ProtocolError(
        `Authenticate.baseVersion ${message.baseVersion} does not match the current identity version ${this.identityVersion}`,
      );
    }
    let identity: Identity;
    if (message.tokenType === 'None') {
      identity = ANONYMOUS;
    } else if (message.tokenType === 'Admin') {
      if (message.value === undefined || !this.host.checkAdminKey(message.value)) {
        this.refuseAuth(message.baseVersion, 'The admin key is not valid for this deployment');
        return;
      }
      identity = { key: 'admin', admin: true, user: null };
    } else {
      this.refuseAuth(
        message.baseVersion,
        'User authentication (JWT) is not supported by Sleigh yet',
      );
      return;
    }
    this.identityVersion = message.baseVersion + 1;
    this.identity = identity;
    // Results may depend on who asks: every query is re-subscribed under the new identity.
    for (const query of this.queries.values()) {
      if (query.entry === null) continue;
      this.host.subscriptions.unsubscribe(this, query.entry);
      query.entry = this.host.subscriptions.subscribe(this, query.udfPath, query.args, identity);
      query.sentVersion = -1;
    }
    this.host.subscriptions.markDirty(this);
  }

  private caller(): 'admin' | 'client' {
    return this.identity.admin ? 'admin' : 'client';
  }

  private async mutation(message: Extract<ClientMessage, { type: 'Mutation' }>): Promise<void> {
    if (this.state === 'closed') return;
    if (message.componentPath) {
      this.send(
        JSON.stringify({
          type: 'MutationResponse',
          requestId: message.requestId,
          success: false,
          result: 'Component functions are not supported by Sleigh',
          logLines: [],
        }),
      );
      return;
    }
    const outcome: MutationOutcome = await this.host.engine.mutation(
      message.udfPath,
      message.args[0]!,
      {
        caller: this.caller(),
        identity: this.identity.user,
        idempotencyKey: `${this.sessionId}:${message.requestId}`,
        // On the first socket of a session nothing can be a resend: skip the log lookup.
        firstAttempt: this.connectionCount === 0,
      },
    );
    if (this.host.faults?.beforeMutationResponse?.(this.sessionId, message.requestId) === 'drop') {
      this.shutdown();
      this.socket.terminate();
      return;
    }
    if (outcome.ok) {
      this.send(
        `{"type":"MutationResponse","requestId":${message.requestId},"success":true,"result":${outcome.json},"ts":"${encodeTs(outcome.ts)}","logLines":${JSON.stringify(outcome.logLines)}}`,
      );
      if (outcome.ts > this.requiredTs) this.requiredTs = outcome.ts;
      // The client resolves the mutation on the next Transition at or after its ts.
      this.mustTransition = true;
      this.host.subscriptions.markDirty(this);
    } else {
      this.send(
        JSON.stringify({
          type: 'MutationResponse',
          requestId: message.requestId,
          success: false,
          result: outcome.error.message,
          logLines: outcome.logLines,
          ...(outcome.error.data === undefined ? {} : { errorData: outcome.error.data }),
        }),
      );
    }
  }

  private async action(message: Extract<ClientMessage, { type: 'Action' }>): Promise<void> {
    const outcome = message.componentPath
      ? null
      : await this.host.engine.action(message.udfPath, message.args[0]!, {
          caller: this.caller(),
          identity: this.identity.user,
        });
    if (outcome?.ok === true) {
      this.send(
        `{"type":"ActionResponse","requestId":${message.requestId},"success":true,"result":${outcome.json},"logLines":${JSON.stringify(outcome.logLines)}}`,
      );
      return;
    }
    this.send(
      JSON.stringify({
        type: 'ActionResponse',
        requestId: message.requestId,
        success: false,
        result:
          outcome === null
            ? 'Component functions are not supported by Sleigh'
            : outcome.error.message,
        logLines: outcome?.logLines ?? [],
        ...(outcome !== null && !outcome.ok && outcome.error.data !== undefined
          ? { errorData: outcome.error.data }
          : {}),
      }),
    );
  }

  /**
   * Sends a Transition with every result that changed; all entries are fresh at `ts`. Returns the
   * timestamp of an acknowledged mutation this server has not heard of yet (the client resolves
   * it only on a Transition at or after it), or null.
   */
  flush(ts: bigint): bigint | null {
    if (this.state !== 'connected') return null;
    const modifications: string[] = [];
    for (const queryId of this.removed)
      modifications.push(`{"type":"QueryRemoved","queryId":${queryId}}`);
    this.removed = [];
    for (const query of this.queries.values()) {
      if (query.refused !== null) {
        if (query.sentVersion === -1) {
          query.sentVersion = 0;
          modifications.push(
            JSON.stringify({
              type: 'QueryFailed',
              queryId: query.queryId,
              errorMessage: query.refused,
              logLines: [],
              journal: null,
            }),
          );
        }
        continue;
      }
      const entry = query.entry!;
      const outcome = entry.outcome;
      if (outcome === null || entry.version === query.sentVersion) continue;
      query.sentVersion = entry.version;
      modifications.push(
        outcome.ok
          ? `{"type":"QueryUpdated","queryId":${query.queryId},"value":${outcome.json},"logLines":${JSON.stringify(outcome.logLines)},"journal":${JSON.stringify(outcome.journal ?? null)}}`
          : JSON.stringify({
              type: 'QueryFailed',
              queryId: query.queryId,
              errorMessage: outcome.error.message,
              logLines: outcome.logLines,
              journal: null,
              ...(outcome.error.data === undefined ? {} : { errorData: outcome.error.data }),
            }),
      );
    }
    const end: StateVersion = {
      querySet: this.querySetVersion,
      identity: this.identityVersion,
      ts: ts > this.sent.ts ? ts : this.sent.ts,
    };
    // A mutation this server committed (or heard of) at or before `end.ts` resolves with this
    // Transition; a newer one (another server's commit feed is behind) waits for a later one.
    const waiting = this.requiredTs > end.ts ? this.requiredTs : null;
    const versionChanged =
      end.querySet !== this.sent.querySet ||
      end.identity !== this.sent.identity ||
      (this.requiredTs > this.sent.ts && waiting === null);
    const resolves = this.mustTransition && waiting === null;
    if (modifications.length === 0 && !versionChanged && !resolves) return waiting;
    const text = `{"type":"Transition","startVersion":${encodeVersion(this.sent)},"endVersion":${encodeVersion(end)},"modifications":[${modifications.join(',')}]}`;
    this.sent = end;
    if (waiting === null) this.mustTransition = false;
    if (text.length <= CHUNK_SIZE) {
      this.send(text);
      return waiting;
    }
    const transitionId = `${process.pid}-${++transitionCounter}`;
    const totalParts = Math.ceil(text.length / CHUNK_SIZE);
    for (let part = 0; part < totalParts; part++) {
      this.send(
        JSON.stringify({
          type: 'TransitionChunk',
          chunk: text.slice(part * CHUNK_SIZE, (part + 1) * CHUNK_SIZE),
          partNumber: part,
          totalParts,
          transitionId,
        }),
      );
    }
    return waiting;
  }

  ping(): void {
    if (this.state === 'connected') this.send('{"type":"Ping"}');
  }

  /** Releases every subscription; the socket is closed or closing. */
  shutdown(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const query of this.queries.values()) {
      if (query.entry !== null) this.host.subscriptions.unsubscribe(this, query.entry);
    }
    this.queries.clear();
    this.host.subscriptions.forget(this);
  }
}
