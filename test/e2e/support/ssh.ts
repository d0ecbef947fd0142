// A password login attempt with ssh2, independent of tackle's own SSH layer.
import { Client } from 'ssh2';

/** Tries a password login (password, then keyboard-interactive): 'ok' or the error message. */
export function passwordLogin(address: string, user: string, password: string): Promise<string> {
  return new Promise((done) => {
    const client = new Client();
    client.on('ready', () => {
      client.end();
      done('ok');
    });
    client.on('error', (err) => done(err.message));
    client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => password)));
    client.connect({ host: address, port: 22, username: user, password, tryKeyboard: true, readyTimeout: 10_000, hostVerifier: () => true });
  });
}
