"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion proofs and their verification.

Leaves are hashed as SHA-256(0x00 || data) and interior nodes as SHA-256(0x01 || left || right).
The tree over n leaves splits at the largest power of two smaller than n, so every range the
algorithms touch is either a *perfect* subtree (a power-of-two run starting at a multiple of its
size, which the log stores) or is split further. ``NodeSource`` abstracts where perfect-subtree
hashes come from: memory for verification, the database for proofs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index) -> hash of the perfect subtree covering leaves [index << level, (index+1) << level)
NodeSource = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of a leaf."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(leaf_hashes: Iterable[bytes]) -> tuple[bytes, int]:
    """The Merkle tree hash over leaf hashes, and how many there were (one pass, O(log n) memory).

    Keeps the stack of perfect subtrees (a "compact range"), merging equal sizes as leaves arrive;
    folding the stack from the right at the end gives exactly RFC 6962's MTH.
    """
    stack: list[tuple[int, bytes]] = []  # (size, hash), sizes strictly decreasing
    count = 0
    for leaf in leaf_hashes:
        count += 1
        size, digest = 1, leaf
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, digest = left_size + size, node_hash(left, digest)
        stack.append((size, digest))
    if not stack:
        return EMPTY_ROOT, 0
    digest = stack[-1][1]
    for _size, left in reversed(stack[:-1]):
        digest = node_hash(left, digest)
    return digest, count


def perfect_nodes(
    first_position: int, leaf_hashes: Sequence[bytes], frontier: NodeSource
) -> list[tuple[int, int, bytes]]:
    """The perfect-subtree nodes (level >= 1) completed by appending leaves at ``first_position``.

    ``frontier`` must answer for the perfect subtrees of the existing tree that new nodes merge
    with (the stored nodes left of ``first_position``).
    """
    made: dict[tuple[int, int], bytes] = {}

    def lookup(level: int, index: int) -> bytes:
        if level == 0 and index >= first_position:
            return leaf_hashes[index - first_position]
        found = made.get((level, index))
        return found if found is not None else frontier(level, index)

    for offset in range(len(leaf_hashes)):
        position = first_position + offset
        level = 1
        while (position + 1) % (1 << level) == 0:
            index = position >> level
            made[(level, index)] = node_hash(
                lookup(level - 1, 2 * index), lookup(level - 1, 2 * index + 1)
            )
            level += 1
    return [(level, index, digest) for (level, index), digest in made.items()]


def subtree_hash(start: int, end: int, nodes: NodeSource) -> bytes:
    """MTH of leaves [start, end) from stored perfect subtrees (ranges as RFC 6962 splits them)."""
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        return nodes(size.bit_length() - 1, start // size)
    split = _largest_power_of_two_below(size)
    return node_hash(
        subtree_hash(start, start + split, nodes), subtree_hash(start + split, end, nodes)
    )


def inclusion_proof(index: int, tree_size: int, nodes: NodeSource) -> list[bytes]:
    """RFC 6962 audit path of leaf ``index`` in the tree of ``tree_size`` leaves."""
    if not 0 <= index < tree_size:
        raise ValueError("index outside the tree")
    proof: list[bytes] = []
    start, end = 0, tree_size
    # Walk down from the root, collecting the sibling subtree at each split (root side first).
    while end - start > 1:
        split = _largest_power_of_two_below(end - start)
        if index < start + split:
            proof.append(subtree_hash(start + split, end, nodes))
            end = start + split
        else:
            proof.append(subtree_hash(start, start + split, nodes))
            start = start + split
    proof.reverse()  # RFC order: from the leaf upwards
    return proof


def root_from_inclusion_proof(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root implied by a leaf hash and its audit path (RFC 9162, section 2.1.3.2)."""
    if not 0 <= index < tree_size:
        raise ValueError("index outside the tree")
    fn, sn = index, tree_size - 1
    digest = leaf
    for sibling in proof:
        if sn == 0:
            raise ValueError("proof is too long")
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            digest = node_hash(digest, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof is too short")
    return digest


def verify_inclusion(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when ``proof`` shows ``leaf`` at ``index`` in the tree with ``root``."""
    try:
        return root_from_inclusion_proof(index, tree_size, leaf, proof) == root
    except ValueError:
        return False
