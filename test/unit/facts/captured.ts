// Fact outputs captured on lab hosts, kept as JSON in ./fixtures (one file per area, keyed by case).
import { readFileSync } from 'node:fs';
import type { FactOutput } from '../../../lib/facts/fact.ts';

/**
 * The captured outputs of `fixtures/AREA.json`, looked up by case name (a missing one is an error).
 *
 * @example const sample = captured('postgres'); parseDatabases(sample('databases.ok'));
 */
export function captured(area: string): (name: string) => FactOutput {
  const samples = JSON.parse(readFileSync(new URL(`./fixtures/${area}.json`, import.meta.url), 'utf8')) as Record<string, FactOutput>;
  return (name) => {
    const sample = samples[name];
    if (!sample) throw new Error(`no captured ${area} sample ${name}`);
    return sample;
  };
}
