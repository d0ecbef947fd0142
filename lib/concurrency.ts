/**
 * A counting semaphore: at most `size` holders at once, the rest wait in order.
 *
 * @example
 * const slots = new Semaphore(10);
 * await slots.use(() => openChannel());
 */
export class Semaphore {
  #free: number;
  readonly #waiting: Array<() => void> = [];

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new TypeError(`Semaphore size must be a positive integer, got ${size}`);
    this.#free = size;
  }

  async use<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}
