// Buffered output to stdout for commands that print many lines: one write per 64 KiB, straight to fd 1, so
// a million-line replay is not a million stream writes. A closed pipe ends the command quietly.
import { writeSync } from 'node:fs';

export class LineOutput {
  private parts: string[] = [];
  private length = 0;

  constructor(private readonly fd = 1) {}

  line(text: string): void {
    this.parts.push(text);
    this.length += text.length + 1;
    if (this.length >= 1 << 16) this.flush();
  }

  flush(): void {
    if (this.parts.length === 0) return;
    const bytes = Buffer.from(`${this.parts.join('\n')}\n`, 'utf8');
    this.parts = [];
    this.length = 0;
    let done = 0;
    while (done < bytes.length) {
      try {
        done += writeSync(this.fd, bytes, done);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') continue; // a non-blocking pipe that is full: wait for the reader
        if (code === 'EPIPE') process.exit(0);
        throw error;
      }
    }
  }
}
