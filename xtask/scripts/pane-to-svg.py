"""Turns `tmux capture-pane -e -p` output (text with ANSI colour codes) into an SVG picture of the
terminal, for the README. Reads stdin, writes stdout. Handles the SGR codes ratatui emits: reset,
bold, reverse, underline, and the 16 basic foreground/background colours."""

import html
import re
import sys

PALETTE = ["#1e1e1e", "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2", "#dcdfe4",
           "#5c6370", "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2", "#ffffff"]
FG, BG = "#dcdfe4", "#1e1e1e"
CW, CH = 8.4, 17  # cell size in px for a 14px monospace font


def parse(line):
    """Yields (text, fg, bg, bold) runs."""
    fg, bg, bold, rev = None, None, False, False
    pos = 0
    for m in re.finditer(r"\x1b\[([0-9;]*)m", line):
        if m.start() > pos:
            yield line[pos:m.start()], fg, bg, bold, rev
        codes = [int(c) if c else 0 for c in m.group(1).split(";")]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                fg, bg, bold, rev = None, None, False, False
            elif c == 1:
                bold = True
            elif c == 7:
                rev = True
            elif c == 22:
                bold = False
            elif c == 27:
                rev = False
            elif 30 <= c <= 37:
                fg = PALETTE[c - 30]
            elif 90 <= c <= 97:
                fg = PALETTE[c - 90 + 8]
            elif c == 39:
                fg = None
            elif 40 <= c <= 47:
                bg = PALETTE[c - 40]
            elif c == 49:
                bg = None
            elif c in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
                col = PALETTE[codes[i + 2] % 16]
                if c == 38:
                    fg = col
                else:
                    bg = col
                i += 2
            i += 1
        pos = m.end()
    if pos < len(line):
        yield line[pos:], fg, bg, bold, rev


def main():
    lines = sys.stdin.read().rstrip("\n").split("\n")
    width = max(len(re.sub(r"\x1b\[[0-9;]*m", "", l)) for l in lines)
    w, h = int(width * CW) + 16, int(len(lines) * CH) + 16
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="DejaVu Sans Mono, Menlo, monospace" font-size="14">',
           f'<rect width="100%" height="100%" fill="{BG}" rx="6"/>']
    for row, line in enumerate(lines):
        col = 0
        y = 8 + row * CH
        for text, fg, bg, bold, rev in parse(line):
            f, b = fg or FG, bg
            if rev:
                f, b = (bg or BG), (fg or FG)
            n = len(text)
            if b:
                out.append(f'<rect x="{8 + col * CW:.1f}" y="{y}" width="{n * CW:.1f}" height="{CH}" fill="{b}"/>')
            if text.strip():
                weight = ' font-weight="bold"' if bold else ""
                out.append(f'<text x="{8 + col * CW:.1f}" y="{y + 13}" fill="{f}"{weight} xml:space="preserve" textLength="{n * CW:.1f}">{html.escape(text)}</text>')
            col += n
    out.append("</svg>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
