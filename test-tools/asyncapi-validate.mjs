// Validates AsyncAPI documents with the official parser (@asyncapi/parser
// 3.x, which runs on Node 20): node asyncapi-validate.mjs FILE...
// Prints every diagnostic; exits 1 when any is an error (severity 0), or
// when the parser finds no document.
import { readFile } from 'node:fs/promises';
import { Parser } from '@asyncapi/parser';

const severities = ['error', 'warning', 'info', 'hint'];
const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(file, 'utf8'), { source: file });
  for (const d of diagnostics) {
    const where = d.path && d.path.length ? d.path.join('.') : '(document)';
    console.log(`${file}: ${severities[d.severity] ?? d.severity}: ${d.code}: ${where}: ${d.message}`);
    if (d.severity === 0) failed = true;
  }
  if (!document) {
    console.log(`${file}: error: the parser produced no document`);
    failed = true;
  } else {
    console.log(`${file}: parsed: AsyncAPI ${document.version()}, ${document.channels().length} channels, ${document.messages().length} messages`);
  }
}
process.exit(failed ? 1 : 0);
