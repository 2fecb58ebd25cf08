/**
 * A one-line progress bar on a terminal (redrawn in place at most ten times a second); on
 * anything else, nothing until the final line.
 */
import type { Output } from './context.js';

const WIDTH = 30;

export class Progress {
  private lastDraw = 0;
  private current = 0;

  constructor(
    private readonly output: Output,
    private readonly label: string,
    private readonly total: number,
  ) {}

  update(current: number): void {
    this.current = current;
    if (!this.output.tty) return;
    const now = Date.now();
    if (now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const fraction = this.total === 0 ? 1 : Math.min(1, current / this.total);
    const filled = Math.round(fraction * WIDTH);
    process.stderr.write(
      `\r${this.label} [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${Math.round(fraction * 100)}% (${current}/${this.total})`,
    );
  }

  done(): void {
    if (this.output.tty) process.stderr.write('\r\x1b[K');
    this.output.err(`${this.label}: ${this.current} documents`);
  }
}
