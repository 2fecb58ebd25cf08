/**
 * The sync protocol's messages (PROTOCOL.md §2; the `convex` package's browser/sync/protocol.ts
 * is the specification): parsing what clients send, with an error naming what is wrong, and
 * encoding what the server sends. Timestamps travel as base64 of 8 little-endian bytes.
 */
import type { JSONValue } from 'convex/values';
import { preview } from '../preview.js';

export type AddQuery = {
  type: 'Add';
  queryId: number;
  udfPath: string;
  args: JSONValue[];
  journal?: string | null;
  componentPath?: string;
};
export type RemoveQuery = { type: 'Remove'; queryId: number };

export type ClientMessage =
  | {
      type: 'Connect';
      sessionId: string;
      connectionCount: number;
      lastCloseReason: string | null;
      maxObservedTimestamp?: bigint;
      clientTs?: number;
    }
  | {
      type: 'ModifyQuerySet';
      baseVersion: number;
      newVersion: number;
      modifications: Array<AddQuery | RemoveQuery>;
    }
  | {
      type: 'Mutation';
      requestId: number;
      udfPath: string;
      args: JSONValue[];
      componentPath?: string;
    }
  | {
      type: 'Action';
      requestId: number;
      udfPath: string;
      args: JSONValue[];
      componentPath?: string;
    }
  | {
      type: 'Authenticate';
      tokenType: 'Admin' | 'User' | 'None';
      baseVersion: number;
      value?: string;
      impersonating?: unknown;
    }
  | { type: 'Event'; eventType: string; event: unknown };

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export function encodeTs(ts: bigint): string {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt.asUintN(64, ts));
  return bytes.toString('base64');
}

export function decodeTs(encoded: unknown, field: string): bigint {
  if (typeof encoded !== 'string') throw new ProtocolError(`${field} must be a base64 string`);
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.length !== 8) throw new ProtocolError(`${field} must encode 8 bytes`);
  return bytes.readBigUInt64LE();
}

type Shape = Record<string, unknown>;

function isObject(value: unknown): value is Shape {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function integer(message: Shape, field: string, type: string): number {
  const value = message[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ProtocolError(`${type}.${field} must be a non-negative integer`);
  }
  return value;
}

function string(message: Shape, field: string, type: string): string {
  const value = message[field];
  if (typeof value !== 'string') throw new ProtocolError(`${type}.${field} must be a string`);
  return value;
}

function argsArray(message: Shape, type: string): JSONValue[] {
  const args = message.args;
  if (!Array.isArray(args) || args.length !== 1 || !isObject(args[0])) {
    throw new ProtocolError(`${type}.args must be an array holding one arguments object`);
  }
  return args as JSONValue[];
}

/** Parses one text frame. Throws a ProtocolError saying what is wrong. */
export function parseClientMessage(text: string): ClientMessage {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    throw new ProtocolError('The frame is not valid JSON');
  }
  if (!isObject(message)) throw new ProtocolError('A message must be a JSON object');
  const type = message.type;
  switch (type) {
    case 'Connect': {
      const maxObserved = message.maxObservedTimestamp;
      const connectionCount = integer(message, 'connectionCount', type);
      const lastCloseReason = message.lastCloseReason;
      if (
        lastCloseReason !== null &&
        lastCloseReason !== undefined &&
        typeof lastCloseReason !== 'string'
      ) {
        throw new ProtocolError('Connect.lastCloseReason must be a string or null');
      }
      const sessionId = string(message, 'sessionId', type);
      if (sessionId.length === 0 || sessionId.length > 128) {
        throw new ProtocolError('Connect.sessionId must be 1 to 128 characters');
      }
      return {
        type,
        sessionId,
        connectionCount,
        lastCloseReason: lastCloseReason ?? null,
        ...(maxObserved === undefined || maxObserved === null
          ? {}
          : { maxObservedTimestamp: decodeTs(maxObserved, 'Connect.maxObservedTimestamp') }),
      };
    }
    case 'ModifyQuerySet': {
      const modifications = message.modifications;
      if (!Array.isArray(modifications))
        throw new ProtocolError('ModifyQuerySet.modifications must be an array');
      const parsed = modifications.map((modification, i): AddQuery | RemoveQuery => {
        if (!isObject(modification))
          throw new ProtocolError(`ModifyQuerySet.modifications[${i}] must be an object`);
        const label = `ModifyQuerySet.modifications[${i}]`;
        if (modification.type === 'Add') {
          return {
            type: 'Add',
            queryId: integer(modification, 'queryId', label),
            udfPath: string(modification, 'udfPath', label),
            args: argsArray(modification, label),
            ...(typeof modification.journal === 'string' ? { journal: modification.journal } : {}),
            ...(typeof modification.componentPath === 'string'
              ? { componentPath: modification.componentPath }
              : {}),
          };
        }
        if (modification.type === 'Remove') {
          return { type: 'Remove', queryId: integer(modification, 'queryId', label) };
        }
        throw new ProtocolError(`${label}.type must be "Add" or "Remove"`);
      });
      return {
        type,
        baseVersion: integer(message, 'baseVersion', type),
        newVersion: integer(message, 'newVersion', type),
        modifications: parsed,
      };
    }
    case 'Mutation':
    case 'Action':
      return {
        type,
        requestId: integer(message, 'requestId', type),
        udfPath: string(message, 'udfPath', type),
        args: argsArray(message, type),
        ...(typeof message.componentPath === 'string'
          ? { componentPath: message.componentPath }
          : {}),
      };
    case 'Authenticate': {
      const tokenType = message.tokenType;
      if (tokenType !== 'Admin' && tokenType !== 'User' && tokenType !== 'None') {
        throw new ProtocolError('Authenticate.tokenType must be "Admin", "User" or "None"');
      }
      return {
        type,
        tokenType,
        baseVersion: integer(message, 'baseVersion', type),
        ...(typeof message.value === 'string' ? { value: message.value } : {}),
        ...(message.impersonating === undefined ? {} : { impersonating: message.impersonating }),
      };
    }
    case 'Event':
      return { type, eventType: String(message.eventType), event: message.event };
    default:
      throw new ProtocolError(
        `Unknown message type ${preview(type, Infinity)}; expected Connect, ModifyQuerySet, Mutation, Action, Authenticate or Event`,
      );
  }
}

export interface StateVersion {
  readonly querySet: number;
  readonly identity: number;
  readonly ts: bigint;
}

export function encodeVersion(version: StateVersion): string {
  return `{"querySet":${version.querySet},"identity":${version.identity},"ts":"${encodeTs(version.ts)}"}`;
}
