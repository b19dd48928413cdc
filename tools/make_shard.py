#!/usr/bin/env python3
"""Write an llm.c token shard, which `attnscope --data` reads.

Format: int32[256] header (magic 20240520, version 1, [2] = number of tokens), then the
tokens as little-endian uint16.

  make_shard.py book.txt book.bin             # one token per byte (vocab 256)
  make_shard.py --ids ids.txt tokens.bin      # whitespace-separated token ids, 0..65535
"""
import argparse
import array
import sys

MAGIC, VERSION = 20240520, 1


def read_ids(path):
    with open(path) as f:
        text = f.read()
    ids = []
    for position, word in enumerate(text.split()):
        try:
            token = int(word)
        except ValueError:
            sys.exit(f"{path}: token {position} is not an integer: {word!r}")
        if not 0 <= token <= 0xFFFF:
            sys.exit(f"{path}: token {position} = {token} does not fit in uint16")
        ids.append(token)
    return ids


def write_shard(path, tokens):
    header = array.array("i", [0] * 256)
    header[0], header[1], header[2] = MAGIC, VERSION, len(tokens)
    body = array.array("H", tokens)
    if sys.byteorder != "little":
        header.byteswap()
        body.byteswap()
    with open(path, "wb") as f:
        header.tofile(f)
        body.tofile(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="text file (bytes become tokens) or, with --ids, a list of token ids")
    parser.add_argument("output", help="shard to write (llm.c names them *.bin)")
    parser.add_argument("--ids", action="store_true", help="input holds whitespace-separated token ids")
    args = parser.parse_args()
    if args.ids:
        tokens = read_ids(args.input)
    else:
        with open(args.input, "rb") as f:
            tokens = list(f.read())
    if len(tokens) >= 2**31:
        sys.exit(f"{args.input}: {len(tokens)} tokens, more than one shard's header can count")
    write_shard(args.output, tokens)
    print(f"{args.output}: {len(tokens)} tokens")


if __name__ == "__main__":
    main()
