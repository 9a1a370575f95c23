#!/usr/bin/env python3
"""Write the fuzz targets' seed corpora (fuzz/seeds/<target>/) from the examples in
docs/protocol/*.md: every JSON example of a dialect's page for that dialect's targets, every
line of the pipe page's examples for the pipe line parser, and the tus headers of the files page.
A seed's file name is the SHA-1 of its bytes, as libFuzzer names its inputs. Run it again after
changing the protocol docs; it only adds files."""

import hashlib
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "protocol"
SEEDS = ROOT / "fuzz" / "seeds"


def blocks(page):
    """The fenced code blocks of a page, with their info string."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)


def json_values(block):
    """Each JSON value of a block (compact), or the block as it is when it is not JSON."""
    out, decoder, i = [], json.JSONDecoder(), 0
    while True:
        while i < len(block) and block[i].isspace():
            i += 1
        if i >= len(block):
            return out
        try:
            value, i = decoder.raw_decode(block, i)
        except ValueError:
            return out + [block.strip()]
        out.append(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def write(target, data):
    data = data.encode("utf-8") if isinstance(data, str) else data
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main():
    for page, targets in [
        ("ourchat-v1.md", ["ourchat_v1", "json_fields"]),
        ("ourchat-v0.md", ["ourchat_v0", "json_fields"]),
        ("svc.md", ["svc_body"]),
        ("rest.md", ["rest_body"]),
    ]:
        for info, block in blocks(page):
            if info not in ("json", ""):
                continue
            for value in json_values(block):
                if value.startswith(("{", "[")):
                    for t in targets:
                        write(t, value)

    for _, block in blocks("pipe.md"):
        for line in block.splitlines():
            line = re.split(r"\s{2,}", line.strip())[0]
            if "|" in line:
                write("pipe_line", line)
                write("pipe_escape", line.replace("|", "\0"))
    for text in ["a\\b|c\nd\re", "\\n\\|", "", "ünï|cødé\\"]:
        write("pipe_escape", text)

    headers = {"upload-metadata": [], "upload-checksum": [], "range": []}
    for _, block in blocks("files.md"):
        for line in block.splitlines():
            name, _, value = line.partition(":")
            if name.strip().lower() in headers:
                headers[name.strip().lower()].append(value.strip())
    for meta in headers["upload-metadata"] or [""]:
        for checksum in headers["upload-checksum"] or [""]:
            for rng in headers["range"] + ["bytes=0-3", "bytes=4-"]:
                write("tus_headers", f"{meta}\n{checksum}\n{rng}\n11")


if __name__ == "__main__":
    main()
