import type { HandlerRef } from '../../lib/ops/operation.ts';

/** A handler as a task body's `handler('…')` gives it, for operation tests that check what `notify` records. */
export const handlerRef = (name: string): HandlerRef => ({ kind: 'tackle.handler', name });
