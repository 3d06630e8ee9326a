// Writes the package's CommonJS copies from its ES modules, with node alone:
// cjs/wshub.cjs, cjs/react.cjs and cjs/server.cjs from wshub.js, react.js
// and server.js, and cjs/*.d.cts from the *.d.ts beside them. The sources
// stay plain ES modules a browser loads as they are; `require()` gets the
// copies (see package.json's `exports`). And LICENSE, a copy of the
// repository's, since the package ships it (`files`).
//
//   node scripts/build-cjs.mjs          write them
//   node scripts/build-cjs.mjs --check  fail if one is not what this writes
//
// The transform is line by line and knows only the forms the sources use:
// `import { a, b } from '...'`, `export class|function|const NAME`,
// `export default NAME;`. Anything else that mentions import or export at
// the start of a line stops it, so a new form cannot slip through.

import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MODULES = ['wshub', 'react', 'server'];
const DECLARATIONS = ['events', 'wshub', 'react', 'server'];
const BANNER = (source) => `// Generated from ${source} by scripts/build-cjs.mjs: edit that file, then run npm run build.\n`;

/** A relative specifier of one of our modules, pointed at its CommonJS copy. */
const toCjs = (specifier) => specifier.replace(/^\.\/([\w-]+)\.js$/, './$1.cjs');

function moduleToCjs(name) {
  const source = `${name}.js`;
  const lines = readFileSync(path.join(root, source), 'utf8').split('\n');
  // A directive the source opens with (`'use client';`) opens the copy too,
  // before 'use strict', where it is still a directive.
  const directive = /^'use [a-z]+';$/.test(lines[0]) ? `${lines.shift()}\n` : '';
  const exported = [];
  let defaultName = null;
  const out = lines.map((line, index) => {
    const where = `${source}:${index + 1}`;
    let match;
    if ((match = /^import \{([^}]+)\} from '([^']+)';$/.exec(line))) {
      const names = match[1].split(',').map((n) => n.trim()).filter(Boolean);
      if (names.some((n) => /\sas\s/.test(n))) throw new Error(`${where}: 'as' in an import is not handled`);
      return `const { ${names.join(', ')} } = require('${toCjs(match[2])}');`;
    }
    if ((match = /^export (class|function|async function|const|let) ([A-Za-z_$][\w$]*)/.exec(line))) {
      exported.push(match[2]);
      return line.replace(/^export /, '');
    }
    if ((match = /^export default ([A-Za-z_$][\w$]*);$/.exec(line))) {
      defaultName = match[1];
      return null;
    }
    if (/^\s*(import|export)\b/.test(line)) throw new Error(`${where}: a form the generator does not handle: ${line}`);
    return line;
  });
  const body = out.filter((line) => line !== null).join('\n').replace(/\n+$/, '\n');
  const exports = exported.map((n) => `exports.${n} = ${n};`);
  if (defaultName) exports.push(`exports.default = ${defaultName};`);
  return `${BANNER(source)}${directive}'use strict';\n\nObject.defineProperty(exports, '__esModule', { value: true });\n\n${body}\n${exports.join('\n')}\n`;
}

function declarationToCts(name) {
  const source = `${name}.d.ts`;
  const text = readFileSync(path.join(root, source), 'utf8');
  return BANNER(source) + text.replace(/from '(\.\/[\w-]+\.js)'/g, (_, spec) => `from '${toCjs(spec)}'`);
}

const outputs = [
  ...MODULES.map((name) => [`cjs/${name}.cjs`, moduleToCjs(name)]),
  ...DECLARATIONS.map((name) => [`cjs/${name}.d.cts`, declarationToCts(name)]),
  ['LICENSE', readFileSync(path.join(root, '../../LICENSE'), 'utf8')],
];

if (process.argv.includes('--check')) {
  const stale = outputs.filter(([file, text]) => {
    const full = path.join(root, file);
    return !existsSync(full) || readFileSync(full, 'utf8') !== text;
  });
  if (stale.length) {
    console.error(`not current (run: node clients/js/scripts/build-cjs.mjs): ${stale.map(([file]) => file).join(', ')}`);
    process.exit(1);
  }
  console.log(`current: ${outputs.map(([file]) => file).join(', ')}`);
} else {
  mkdirSync(path.join(root, 'cjs'), { recursive: true });
  for (const [file, text] of outputs) writeFileSync(path.join(root, file), text);
  console.log(`wrote ${outputs.map(([file]) => file).join(', ')}`);
}
