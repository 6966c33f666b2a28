"""Digests of a network's weights as they are now: what score caches are keyed by.

Every network skseg runs (:class:`~skseg.model.SegmentationModel`,
:class:`~skseg.embedding.EmbeddingModel`) is identified by the SHA-256 of what
describes its architecture and of its tensors, recomputed only when a tensor has
been modified in place since the last time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

__all__ = ["tensors_digest"]


def tensors_digest(
    owner: object, header: bytes, state: Mapping[str, torch.Tensor]
) -> str:
    """Return the SHA-256 of ``header`` then each named tensor, memoised on ``owner``.

    Parameters
    ----------
    owner : object
        Keeps the memo (in its ``__dict__``, as ``_digest_memo``): the digest is
        recomputed only when a tensor's in-place version counter has moved, which
        costs nothing to read. ``header`` must not change while ``owner`` lives.
    header : bytes
        What describes the architecture (hashed first).
    state : mapping of str to Tensor
        ``module.state_dict(keep_vars=True)``; names are hashed in sorted order
        with each tensor's dtype, shape and bytes.

    Returns
    -------
    digest : str
        64 hexadecimal digits.

    Examples
    --------
    >>> import torch
    >>> class Owner:
    ...     pass
    >>> w = torch.zeros(2)
    >>> a = tensors_digest(Owner(), b"net", {"w": w})
    >>> a == tensors_digest(Owner(), b"net", {"w": torch.zeros(2)})
    True
    >>> owner = Owner()
    >>> before = tensors_digest(owner, b"net", {"w": w})
    >>> _ = w.add_(1.0)
    >>> tensors_digest(owner, b"net", {"w": w}) == before
    False
    """
    versions = tuple(t._version for t in state.values())
    memo = owner.__dict__.get("_digest_memo")
    if memo is not None and memo[0] == versions:
        return memo[1]
    h = hashlib.sha256(header)
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.numpy().tobytes())
    digest = h.hexdigest()
    owner.__dict__["_digest_memo"] = (versions, digest)
    return digest
