"""The limits that keep a compile bounded, whatever the input.

Every input dtmsi reads is untrusted: a typo, a generator gone wrong or a
hostile file must end in a diagnostic, not in a hang, a traceback or gigabytes
of memory. Each limit sits far above what a real machine description needs
(a PCI domain has at most 65,536 functions; Linux reads device trees at most
64 levels deep) and has its own error code in ``dtmsi/codes.py``; the README's
"Limits" table lists them, and tests/test_limits.py holds each one.
"""

from __future__ import annotations

# Bytes in one input file: the .msi file, each include, the base tree and its
# /include/s. Only regular files are read (a FIFO or /dev/zero never is).
MAX_INPUT_BYTES = 256 << 20

# Bytes in a base device tree (.dts or .dtb) and in each of its /include/s:
# the DTS parser holds a whole file's parse tree (the largest Linux board
# trees are well under 1 MB).
MAX_BASE_TREE_BYTES = 16 << 20

# Characters in one string literal ("..." in .msi); Linux's command line
# is at most 2048 (COMMAND_LINE_SIZE on arm64 and x86).
MAX_STRING_CHARS = 4096

# Digits in one number literal (prefix and '_' not counted): 128 binary
# digits is the widest value allowed; converting long decimals is quadratic.
MAX_NUMBER_DIGITS = 128

# Every value, literal or computed, lies strictly between -2**128 and 2**128.
MAX_VALUE_BITS = 128

# Nested '{ }' blocks, and nested template uses.
MAX_BLOCK_DEPTH = 64

# Nested parentheses and unary operators in one expression.
MAX_EXPR_DEPTH = 100

# Nested includes (a board file rarely goes three deep).
MAX_INCLUDE_DEPTH = 16

# Tokens in one statement's own words and arguments (not its block: a raw
# property of 16,000 cells or a 5,000-term sum fits), and in one top-level statement with
# everything nested in it (bench/gen.py writes ~14 tokens a function: a
# host bridge of 65,536 such functions fits).
MAX_STATEMENT_TOKENS = 16384
MAX_TOPLEVEL_TOKENS = 2_000_000

# Values one 'repeat' runs through, and CPU numbers one 'cpus' list names.
MAX_REPEAT = 1 << 20
MAX_CPU_LIST = 1 << 16

# Statements expanded by 'repeat' and 'use' over the whole compile, plus CPU
# numbers listed: MAX_EXPANSION, plus one per EXPANSION_BYTES of source read.
# Small inputs cannot multiply past a million; a large flat file (bench/gen.py
# writes ~68 bytes and 6.7 statements a function) always fits.
MAX_EXPANSION = 1_000_000
EXPANSION_BYTES = 8

# Width and precision in an interpolation "{v:08x}".
MAX_INTERPOLATION_WIDTH = 64

# Node depth of a base device tree (Linux: FDT_MAX_DEPTH in drivers/of/fdt.c).
MAX_TREE_DEPTH = 64

# Columns of source shown under a diagnostic, characters of its message and
# hint (which quote the input), and diagnostics kept per compile.
MAX_SNIPPET_COLUMNS = 160
MAX_MESSAGE_CHARS = 400
MAX_DIAGNOSTICS = 1000
