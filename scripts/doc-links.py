"""Checks the Markdown files of the repository: every relative link and image resolves, and every file
under docs/ is cited by a current document.

    python3 scripts/doc-links.py            # exit 1 on a broken link or an uncited docs/ file
    python3 scripts/doc-links.py --list     # also print which document cites each docs/ file

Links: Markdown [text](target) and ![alt](target), and HTML src="..." / href="...", in every tracked
.md file; http(s) and mailto are skipped, targets resolve against the file's directory, and a
"#fragment" into a Markdown file must name one of its headings (GitHub's anchors). Citations: the current documents are README.md, docs/*.md, bench/README.md and
models/*/README.md and PROVENANCE.md; a docs/ file is cited if one of them links to it (or to a
directory holding it) or names its path in the text (e.g. `docs/mixture3.json` in a command).
"""
import fnmatch
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|(?:src|href)=\"([^\"]+)\"")
PATHISH = re.compile(r"[A-Za-z0-9_./-]+\.(?:png|gif|jsonl|json|md|txt|csv)\b")
CURRENT = ["README.md", "docs/*.md", "bench/README.md", "models/*/README.md", "models/*/PROVENANCE.md"]


def tracked(pattern="*"):
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", pattern],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [p for p in out.split("\n") if p and os.path.exists(os.path.join(ROOT, p))]


def links(text, fragments=False):
    for m in LINK.finditer(text):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        if fragments:
            yield target
        elif not target.startswith("#"):
            yield target.split("#", 1)[0]


def anchors(path):
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -, -1 -2 ... on repeats."""
    seen, out, fence = {}, set(), False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fence = not fence
            m = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if not m:
                continue
            slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def main():
    md = [p for p in tracked("*.md") if "node_modules/" not in p and not p.startswith(("out/", "bin/"))]
    broken = []
    for path in md:
        base = os.path.dirname(path)
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            text = f.read()
        for target in links(text, fragments=True):
            file, _, frag = target.partition("#")
            full = os.path.join(ROOT, base, file) if file else os.path.join(ROOT, path)
            if not os.path.exists(full):
                broken.append(f"{path}: {target}")
            elif frag and full.endswith(".md") and frag not in anchors(full):
                broken.append(f"{path}: {target} (no such heading)")

    docs = [p for p in tracked("docs/*")]
    current = [p for p in md if any(fnmatch.fnmatch(p, c) for c in CURRENT)]
    cited = {}
    for path in current:
        base = os.path.dirname(path)
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            text = f.read()
        refs = set(links(text)) | set(PATHISH.findall(text))
        for ref in refs:
            for cand in (os.path.join(base, ref), ref):
                norm = os.path.normpath(cand)
                for d in docs:
                    if d == norm or d.startswith(norm.rstrip("/") + "/"):
                        cited.setdefault(d, set()).add(path)
    uncited = [d for d in docs if d not in cited]

    if "--list" in sys.argv:
        for d in docs:
            print(d, "<-", ", ".join(sorted(cited.get(d, ()))) or "(nothing)")
    for b in broken:
        print("broken link:", b)
    for u in uncited:
        print("not cited by a current document:", u)
    print(f"{len(md)} Markdown files, {len(broken)} broken links; {len(docs)} files in docs/, {len(uncited)} uncited")
    sys.exit(1 if broken or uncited else 0)


if __name__ == "__main__":
    main()
