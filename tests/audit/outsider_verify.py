"""Check a citygrid access-log inclusion proof with nothing but the log's public key.

    python outsider_verify.py PROOF.json --server https://citygrid.example.gov.cn
    python outsider_verify.py PROOF.json --public-key BASE64 [--origin citygrid/audit]

Needs only the standard library and `cryptography`. Exit status 0: the entry is in the log
that the key signed; 1: it is not (the reason is printed).
"""

import argparse
import base64
import hashlib
import json
import sys
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162, 2.1.3.2: the root implied by a leaf at `index` and its audit path."""
    if not 0 <= index < size:
        raise ValueError("leaf index outside the tree")
    fn, sn, digest = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            raise ValueError("audit path too long")
        if fn & 1 or fn == sn:
            digest = node(sibling, digest)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            digest = node(digest, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("audit path too short")
    return digest


def check(proof: dict, public_key: bytes, origin: str | None = None) -> str:
    """Raise ValueError unless `proof` shows its entry in a tree the key signed."""
    checkpoint = proof["checkpoint"]
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            base64.b64decode(checkpoint["signature"]), checkpoint["note"].encode()
        )
    except InvalidSignature:
        raise ValueError("the checkpoint's signature does not verify") from None
    note_origin, size, root, signed_at, _ = checkpoint["note"].split("\n")
    if origin is not None and note_origin != origin:
        raise ValueError(f"the checkpoint is of another log: {note_origin}")
    if int(size) != proof["tree_size"]:
        raise ValueError("the proof is against another tree size than the signed one")
    leaf = hashlib.sha256(b"\x00" + proof["canonical_entry"].encode()).digest()
    path = [base64.b64decode(h) for h in proof["audit_path"]]
    if root_from_path(proof["leaf_index"], int(size), leaf, path) != base64.b64decode(root):
        raise ValueError("the entry and audit path do not lead to the signed root")
    return f"entry {proof['entry_id']} is leaf {proof['leaf_index']} of {size}, signed {signed_at}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("proof", help="the proof as JSON (a file, or - for stdin)")
    parser.add_argument("--server", help="fetch the public key from this citygrid")
    parser.add_argument("--public-key", help="the raw Ed25519 public key, base64")
    parser.add_argument("--origin", help="the log's name the checkpoint must carry")
    args = parser.parse_args()
    with open(args.proof if args.proof != "-" else 0, encoding="utf-8") as source:
        proof = json.load(source)
    public_key, origin = args.public_key, args.origin
    if args.server:
        url = args.server.rstrip("/") + "/api/v1/audit/public-key"
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - the user's URL
            published = json.load(answer)
        keys = {k["key_id"]: k["public_key"] for k in [published, *published["retired"]]}
        public_key = keys.get(proof["checkpoint"]["key_id"])
        origin = origin or published["origin"]
    if not public_key:
        parser.error("give --server or --public-key (with the key that signed the checkpoint)")
    try:
        print("OK:", check(proof, base64.b64decode(public_key), origin))  # noqa: T201
    except (ValueError, KeyError) as problem:
        print("NOT VERIFIED:", problem)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
