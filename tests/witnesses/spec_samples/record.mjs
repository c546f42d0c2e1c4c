// Preloaded before a spec sample (node --import ./record.mjs SAMPLE.mjs): records what the
// sample prints -- console.log, console.error, process.stdout.write, each call's arguments --
// and, when the process exits for whatever reason, writes them with the exit code as JSON to
// the file named by WITNESS_RECORD. The sample's output still reaches stdout and stderr.
import { writeFileSync } from 'node:fs';

const calls = [];
// JSON has no undefined: an argument the sample printed as undefined is recorded as null.
const plain = (args) => args.map((arg) => (arg === undefined ? null : arg));
let inConsole = false; // console.log itself writes to stdout: record that once, as a log

for (const name of ['log', 'error']) {
  const original = console[name].bind(console);
  console[name] = (...args) => {
    calls.push({ fn: name, args: plain(args) });
    inConsole = true;
    try {
      original(...args);
    } finally {
      inConsole = false;
    }
  };
}

const write = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => {
  if (!inConsole) calls.push({ fn: 'write', args: [String(chunk)] });
  return write(chunk, ...rest);
};

process.on('exit', (code) => {
  if (process.env.WITNESS_RECORD) {
    writeFileSync(process.env.WITNESS_RECORD, JSON.stringify({ exit_code: code, calls }));
  }
});
