#!/usr/bin/env python3
"""The shared library's exported symbols against its public header.

usage: check_abi.py [--nm NM] LIBRARY HEADER [CC ...]
       check_abi.py --list HEADER [CC ...]

Exits 1, naming each symbol, when the library exports a symbol the header
does not declare or lacks one it declares. The header goes through the C
preprocessor (CC, default "cc"), so that conditionals and macros read as a
compiler reads them; only what comes from HEADER itself is parsed, not the
system headers it includes.
"""
import re
import subprocess
import sys

IDENT = re.compile(r'\b([A-Za-z_]\w*)\s*\(')
NOT_NAMES = {'__attribute__', '__asm__', '__declspec', '__typeof__', 'typeof'}


def preprocess(header, cc):
    """The header's own text after preprocessing (linemarkers say whose)."""
    out = subprocess.run(cc + ['-E', '-x', 'c', header], check=True, capture_output=True,
                         text=True).stdout
    keep, mine = [], False
    marker = re.compile(r'^#\s*\d+\s+"([^"]*)"')
    for line in out.splitlines():
        m = marker.match(line)
        if m:
            mine = m.group(1).endswith(header.rsplit('/', 1)[-1])
            continue
        if mine and not line.startswith('#'):
            keep.append(line)
    return '\n'.join(keep)


def statements(text):
    """Top-level declarations: each ends at ';' at brace depth 0, or at the
    '}' that closes a function's body (a static inline definition)."""
    stmt, depth, body = [], 0, False
    for ch in text:
        stmt.append(ch)
        if ch == '{':
            if depth == 0 and ''.join(stmt[:-1]).rstrip().endswith(')'):
                body = True
            depth += 1
        elif ch == '}':
            depth -= 1
            if depth == 0 and body:
                yield ''.join(stmt), True
                stmt, body = [], False
        elif ch == ';' and depth == 0:
            yield ''.join(stmt), False
            stmt = []


def declared(header, cc):
    """Functions (and extern objects) the header declares for the linker."""
    names = set()
    for s, is_definition in statements(preprocess(header, cc)):
        s = ' '.join(s.split())
        if is_definition or '{' in s or s.startswith(('typedef', 'static')):
            continue
        for m in IDENT.finditer(s):
            if m.group(1) not in NOT_NAMES:
                # a pointer to function declarator names its object the
                # same way, "(*name)(": that is an object, not a function
                if s[m.start(1) - 2:m.start(1)].endswith('(*'):
                    break
                names.add(m.group(1))
                break
        else:
            if s.startswith('extern ') and '(' not in s:
                names.add(re.findall(r'([A-Za-z_]\w*)\s*(?:\[[^]]*\])?\s*;$', s)[0])
    return names


def exported(library, nm):
    """Defined symbols of the library's dynamic symbol table."""
    out = subprocess.run([nm, '-D', '--defined-only', library], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) < 3 or f[1] == 'A':  # 'A': a version node's name
            continue
        names.add(f[2].split('@', 1)[0])
    return names


def main(argv):
    nm = 'nm'
    if len(argv) >= 3 and argv[1] == '--nm':
        nm, argv = argv[2], argv[:1] + argv[3:]
    if len(argv) >= 3 and argv[1] == '--list':
        for n in sorted(declared(argv[2], argv[3:] or ['cc'])):
            print(n)
        return 0
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    want = declared(argv[2], argv[3:] or ['cc'])
    have = exported(argv[1], nm)
    if not want:
        print(f'no function found in {argv[2]}: the parser is wrong', file=sys.stderr)
        return 1
    extra, missing = sorted(have - want), sorted(want - have)
    for n in extra:
        print(f'exported but not in {argv[2]}: {n}')
    for n in missing:
        print(f'declared in {argv[2]} but not exported: {n}')
    print(f'{len(have)} exported, {len(want)} declared, {len(extra)} extra, '
          f'{len(missing)} missing')
    return 1 if extra or missing else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
