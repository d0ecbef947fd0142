// The failure notice of a backup run: a Slack-compatible `{"text": …}` message built from the
// (already masked) JSON report, masked once more against the secrets the script holds.
import { mask, type Secret } from '../command/command.ts';
import type { JsonReport } from '../engine/report.ts';

/** Slack's incoming-webhook payload (Mattermost, Discord's /slack endpoint and others take it too). */
export interface WebhookPayload {
  text: string;
}

const LINE_MAX = 600;

function clip(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > LINE_MAX ? `${one.slice(0, LINE_MAX - 1)}…` : one;
}

/**
 * The message for a run in which some host failed or was unreachable, naming each such host
 * and the step that failed with its reason and the last line of its error output; undefined
 * when every host succeeded. `secrets` are masked in the text, whatever the report says.
 *
 * @example
 * const payload = failureMessage(report, { secrets: [env.KEY.reveal()] });
 * // { text: 'tackle nightly-backup failed on 1 of 2 host(s)\n• db1: step `postgres.dump app` failed: …' }
 */
export function failureMessage(report: JsonReport, opts: { secrets?: readonly string[] } = {}): WebhookPayload | undefined {
  const bad = report.hosts.filter((h) => h.status === 'failed' || h.status === 'unreachable');
  if (bad.length === 0) return undefined;
  const lines = bad.map((h) => {
    const step = h.steps.find((s) => s.status === 'failed');
    const error = step?.error ?? h.error;
    const detail = error?.stderrTail?.trim().split('\n').at(-1);
    const why = [error?.reason ?? 'no reason recorded', detail && !error?.reason.includes(detail) ? detail : ''].filter(Boolean).join(': ');
    if (h.status === 'unreachable') return `• ${h.name}: unreachable: ${clip(why)}`;
    return `• ${h.name}: step \`${step?.name ?? 'task'}\` failed: ${clip(why)}`;
  });
  const text = [`tackle ${report.task}${report.dryRun ? ' (dry-run)' : ''} failed on ${bad.length} of ${report.hosts.length} host(s) (started ${report.startedAt})`, ...lines].join('\n');
  return { text: mask(text, opts.secrets ?? []) };
}

/** How a webhook post went; a failure says why without the URL (it is a credential). */
export type PostResult = { ok: true; status: number } | { ok: false; reason: string };

/**
 * POSTs the payload as JSON to a webhook URL kept as a secret. Never throws; gives up after
 * `timeoutMs` (default 10 s).
 *
 * @example const r = await postWebhook(env.BACKUP_WEBHOOK_URL, payload);
 */
export async function postWebhook(url: Secret, payload: WebhookPayload, opts: { timeoutMs?: number } = {}): Promise<PostResult> {
  try {
    const response = await fetch(url.reveal(), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    });
    await response.body?.cancel();
    return response.ok ? { ok: true, status: response.status } : { ok: false, reason: `the webhook answered HTTP ${response.status}` };
  } catch (err) {
    const cause = (err as Error & { cause?: { code?: string } }).cause?.code;
    return { ok: false, reason: `the webhook could not be reached (${(err as Error).name}${cause ? `: ${cause}` : ''})` };
  }
}
