"""Signed notes, checkpoints, cosignatures, tlog-proofs, tile paths: round trips,
outside vectors and malformed input becoming ironlog's own errors."""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironlog.core import merkle, note, tiles, tlogproof
from ironlog.errors import FormatError, IronlogError, VerificationError

SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n— example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def test_spec_example_verifies() -> None:
    v = note.Verifier.from_vkey(SPEC_VKEY)
    n, signers = note.open_note(SPEC_NOTE, [v])
    assert n.text == "This is an example message.\n" and signers == [v]
    assert n.to_str() == SPEC_NOTE
    bad = SPEC_NOTE.replace("example message", "exemplary message")
    with pytest.raises(VerificationError):
        note.open_note(bad, [v])


def test_unknown_signatures_ignored_known_bad_rejected() -> None:
    a, b = note.Signer.generate("log.example/a"), note.Signer.generate("log.example/b")
    text = note.sign_note("hello\n", a, b)
    assert note.open_note(text, [a.verifier()])[1] == [a.verifier()]
    with pytest.raises(VerificationError, match="trusted"):
        note.open_note(text, [note.Signer.generate("other").verifier()])
    # A known key whose signature is wrong rejects the note.
    forged = note.Note("hello\n", (note.NoteSignature(a.name, a.key_id, b"\x00" * 64),))
    with pytest.raises(VerificationError, match="invalid"):
        note.open_note(forged.to_str(), [a.verifier()])


def test_accepts_many_signatures_and_rotation() -> None:
    signers = [note.Signer.generate(f"k{i}") for i in range(20)]
    text = note.sign_note("rotate\n", *signers)
    n, got = note.open_note(text, [signers[0].verifier(), signers[19].verifier()])
    assert len(n.signatures) == 20 and len(got) == 2


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"no newline",
        b"text\n\n",
        b"text\n\nnot a signature\n",
        b"text\n\n\xe2\x80\x94 name !!!notbase64\n",
        b"text\n\n\xe2\x80\x94 name AAAA\n",
        b"te\x01xt\n\n\xe2\x80\x94 name AAAAAAAA\n",
        b"\xff\xfe\n\n\xe2\x80\x94 name AAAAAAAA\n",
        b"text\n\n\xe2\x80\x94 na me AAAAAAAA\n",
    ],
)
def test_malformed_notes(bad: bytes) -> None:
    with pytest.raises(FormatError):
        note.parse_note(bad)


@given(st.binary(max_size=200))
def test_fuzz_parsers_only_raise_own_errors(data: bytes) -> None:
    for fn in (note.parse_note, tlogproof.parse_tlog_proof):
        with contextlib.suppress(IronlogError):
            fn(data)
    with contextlib.suppress(IronlogError):
        note.parse_checkpoint(data.decode("utf-8", "replace"))


@given(
    st.from_regex(r"[a-z0-9.]{1,20}/[a-z]{1,10}", fullmatch=True),
    st.integers(0, 2**40),
    st.binary(min_size=32, max_size=32),
)
def test_checkpoint_roundtrip(origin: str, size: int, root: bytes) -> None:
    cp = note.Checkpoint(origin, size, root)
    assert note.parse_checkpoint(cp.body()) == cp
    signer = note.Signer(origin, b"\x07" * 32)
    text = cp.sign(signer)
    parsed = note.parse_note(text)
    assert note.parse_note(parsed.to_str()) == parsed
    assert note.open_checkpoint(text, signer.verifier()).checkpoint == cp


@pytest.mark.parametrize(
    "body",
    [
        "o\n01\nAAAA\n",
        "o\n1\n",
        "o o\n1\n" + "A" * 43 + "=\n",
        "o\n-1\n" + "A" * 43 + "=\n",
        "o\n1\nAAAA\n",
        "o\n1\n" + "A" * 43 + "=\n\n",
    ],
)
def test_bad_checkpoints(body: str) -> None:
    with pytest.raises(FormatError):
        note.parse_checkpoint(body)


def test_key_strings_reject_tampering(sumdb: dict) -> None:  # type: ignore[type-arg]
    vk = sumdb["verifier_key"]
    with pytest.raises(FormatError):
        note.Verifier.from_vkey(vk.replace("+d7fca92c+", "+d7fca92d+"))
    with pytest.raises(FormatError):
        note.Signer.from_private_key(sumdb["private_key"].replace("PRIVATE", "PUBLIC"))
    with pytest.raises(FormatError):
        note.Verifier.from_vkey("name+only")


def test_cosignature_v1() -> None:
    log_signer = note.Signer.generate("log.example/t/l")
    witness = note.CosignatureSigner("witness.example", os.urandom(32))
    cp = note.Checkpoint("log.example/t/l", 5, b"\x01" * 32)
    text = cp.sign(log_signer)
    sig = witness.cosign(cp.body(), 1_700_000_000)
    assert len(sig.blob) == 72
    cosigned = text + sig.line()
    parsed = note.parse_note(cosigned)
    w = note.Verifier.from_vkey(witness.vkey())
    assert w.alg == note.ALG_COSIGNATURE_V1
    assert note.cosigners(parsed, [w]) == [w]
    assert note.verify_cosignature(cp.body(), parsed.signatures[1], w) == 1_700_000_000
    # The log key still verifies the note; the cosignature is an unknown key to it.
    assert note.open_checkpoint(cosigned, log_signer.verifier()).checkpoint == cp
    tampered = note.NoteSignature(
        sig.name, sig.key_id, (1_700_000_001).to_bytes(8, "big") + sig.blob[8:]
    )
    with pytest.raises(VerificationError):
        note.verify_cosignature(cp.body(), tampered, w)


def test_tlog_proof_roundtrip_and_verify() -> None:
    entries = [f"e{i}".encode() for i in range(11)]
    leaves = [merkle.leaf_hash(e) for e in entries]
    nodes = {}
    tb = tiles.TileBuilder()
    for ref, data in tb.add(leaves) + tb.partials():
        nodes[(ref.level, ref.index)] = data
    reader = tiles.NodeReader(lambda lv, ix: nodes.get((lv, ix)))
    signer = note.Signer.generate("log.example/t/l")
    cp_text = note.Checkpoint("log.example/t/l", 11, tb.root()).sign(signer)
    p = tlogproof.TlogProof(7, tuple(merkle.inclusion_proof(7, 11, reader.node)), cp_text, b"x")
    again = tlogproof.parse_tlog_proof(p.to_text())
    assert again == p and again.to_text() == p.to_text()
    again.verify(entries[7], signer.verifier())
    with pytest.raises(VerificationError):
        again.verify(entries[6], signer.verifier())
    with pytest.raises(VerificationError):
        again.verify(entries[7], note.Signer.generate("log.example/t/l").verifier())
    with pytest.raises(VerificationError, match="policy"):
        again.verify(entries[7], signer.verifier(), [], quorum=1)
    with pytest.raises(FormatError):
        tlogproof.parse_tlog_proof(p.to_text().replace("index 7", "index 07"))


@pytest.mark.parametrize(
    ("n", "path"), [(0, "000"), (5, "005"), (1000, "x001/000"), (1234067, "x001/x234/067")]
)
def test_tile_index_paths(n: int, path: str) -> None:
    assert tiles.format_index(n) == path
    ref = tiles.TileRef(2, n, 17)
    assert tiles.parse_tile_path(ref.path()) == ref
    assert tiles.parse_tile_path(f"tile/entries/{path}") == tiles.TileRef(-1, n)


@pytest.mark.parametrize(
    "bad",
    [
        "tile/0/5",
        "tile/0/005.p/0",
        "tile/0/005.p/256",
        "tile/0/x000/005",
        "tile/01/000",
        "tile/0/005.p/07",
        "tile/x/000",
        "../etc/passwd",
    ],
)
def test_bad_tile_paths(bad: str) -> None:
    with pytest.raises(FormatError):
        tiles.parse_tile_path(bad)


def test_worked_example_size_70000() -> None:
    paths = [r.path() for r in tiles.tiles_for_size(70000)]
    assert "tile/0/273.p/112" in paths and "tile/1/000" in paths
    assert "tile/1/001.p/17" in paths and "tile/2/000.p/1" in paths
    assert len(paths) == 273 + 1 + 2 + 1


def test_bundle_roundtrip() -> None:
    entries = [b"", b"a", b"x" * 65535]
    assert tiles.decode_bundle(tiles.encode_bundle(entries)) == entries
    with pytest.raises(FormatError):
        tiles.encode_bundle([b"x" * 65536])
    with pytest.raises(FormatError):
        tiles.decode_bundle(b"\x00\x05ab")


@given(st.binary(min_size=32, max_size=32))
def test_key_strings_roundtrip(seed: bytes) -> None:
    s = note.Signer("log.example/t/l", seed)
    assert note.Signer.from_private_key(s.private_key()).vkey() == s.vkey()
    assert note.Verifier.from_vkey(s.vkey()) == s.verifier()


@given(st.integers(min_value=0, max_value=1 << 40))
def test_partial_tiles_and_widths_agree_with_the_tile_list(size: int) -> None:
    # tile_width_at and partial_tiles are the one place tile geometry is
    # computed; tiles_for_size, the builder resume and the tile route use them.
    listed = (
        {(r.level, r.index): r.width for r in tiles.tiles_for_size(size)} if size < 1 << 20 else {}
    )
    edges = tiles.partial_tiles(size)
    assert [lv for lv, _ in edges] == list(range(len(edges)))
    for level, index in edges:
        width = tiles.tile_width_at(level, index, size)
        assert width == (size >> (8 * level)) % 256
        assert tiles.tile_width_at(level, index + 1, size) == 0
        if listed and width:
            assert listed[(level, index)] == width
    assert tiles.tile_width_at(-1, size // 256, size) == size % 256
    assert tiles.tile_width_at(-1, 0, size) == min(size, 256)


def test_checkpoint_size_reads_the_size_line_of_a_signed_note() -> None:
    text = "example.com/log\n42\n" + "A" * 43 + "=\n\n— example.com/log abcd\n"
    assert note.checkpoint_size(text) == 42
    for bad in ("example.com/log\n", "o\n042\nr\n", "o\n-1\nr\n", "o\n" + "9" * 30 + "\nr\n"):
        with pytest.raises(FormatError):
            note.checkpoint_size(bad)
