// Lines handed on in pieces of about 64 KiB, so that a million lines are not a million writes: the one buffer of
// the trace writer, the command's standard output and the massif export. No node: imports: any layer may use it.

/** Lines joined with newlines and handed to `write` in pieces of about 64 KiB, each ending in a newline. */
export class LineBuffer {
  private parts: string[] = [];
  private length = 0;

  constructor(private readonly write: (text: string) => void) {}

  line(text: string): void {
    this.parts.push(text);
    this.length += text.length + 1;
    if (this.length >= 1 << 16) this.flush();
  }

  /** Hands on what is buffered. The buffer is emptied first, so a write that throws (a closed pipe) leaves nothing behind. */
  flush(): void {
    if (this.parts.length === 0) return;
    const text = `${this.parts.join('\n')}\n`;
    this.parts = [];
    this.length = 0;
    this.write(text);
  }
}
