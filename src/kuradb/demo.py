"""The Quick start demo: store, version, read by id, revert, attach a blob, query, show the change log."""
from __future__ import annotations

from typing import TextIO

from . import errors
from .store import Store


def run(store: Store, out: TextIO) -> None:
    say = lambda *parts: print(*parts, file=out)  # noqa: E731
    canvases = store.collection("canvases")

    say(f"kuradb demo on {store.directory}\n")
    rec = canvases.put({"title": "Harbour at dusk", "layers": ["sky", "sea"]}, id="harbour", type="canvas")
    say(f"1. put      canvases/harbour v{rec.version}  rev {rec.rev[:14]}…  checksum {str(rec.checksum)[:10]}…")

    rec = canvases.update("harbour", {"layers": ["sky", "sea", "boats"], "zoom": 1.5})
    say(f"2. update   merge patch -> v{rec.version}: layers={rec['layers']} zoom={rec['zoom']}")

    try:
        canvases.put({"title": "stale edit"}, id="harbour", if_version=1)
    except errors.ConflictError as e:
        say(f"3. conflict a write based on v1 is refused: {e.code} (now at v{e.current.version})")

    got = canvases.get("harbour")
    say(f"4. get      by id -> v{got.version} {got.content}")

    rec = canvases.revert("harbour", 1)
    say(f"5. revert   to v1 as a new version v{rec.version}: layers={rec['layers']}")

    thumb = store.blobs.put(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64, content_type="image/png")
    rec = canvases.update("harbour", {"thumbnail": thumb})
    say(f"6. blob     {thumb.size:,} bytes stored as {thumb.hash[:12]}…, referenced by v{rec.version}")
    say(f"            read back and verified: {len(store.blobs.get(rec['thumbnail'])):,} bytes")

    with store.transaction():
        canvases.put({"title": "Sketch A"}, id="sketch-a", type="canvas")
        canvases.put({"title": "Sketch B"}, id="sketch-b", type="canvas")
    say(f"7. transaction  two sketches committed together; collection holds {len(canvases)} records")

    found = canvases.find({"_type": "canvas", "title": {"$startswith": "Sketch"}}, sort="-title")
    say(f"8. query    sketches, newest title first: {[r.id for r in found]}")
    layered = canvases.aggregate([{"$match": {"layers": "sea"}}, {"$count": "n"}])
    say(f"            canvases with a sea layer (aggregate, in SQL): {layered[0]['n'] if layered else 0}")

    say("\nhistory of canvases/harbour (oldest first):")
    for r in canvases.history("harbour"):
        say(f"  v{r.version}  {r.modified:%H:%M:%S.%f}  {sorted((r.content or {}).keys())}")

    say("\nchange log:")
    for c in store.changes():
        what = f"{c.collection}/{c.id}" if c.kind == "record" else f"{c.kind} {str(c.id)[:12]}…"
        version = f"v{c.version}" if c.version else ""
        say(f"  #{c.position:<3} {c.op:<7} {what} {version}")

    stats = store.stats()
    say("\nstats: " + ", ".join(f"{k}={stats[k]}" for k in
                                ("position", "collections", "records", "versions", "blobs", "blob_bytes")))
