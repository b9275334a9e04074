"""Full-text search: BM25 ranking, the search syntax, and the text index moving with every write."""
from __future__ import annotations

import pytest

from kuradb import errors


@pytest.fixture
def notes(store):
    c = store.collection("notes")
    c.put_many([
        ("n1", {"title": "Rust ownership", "body": "borrowing and lifetimes", "lang": "rust"}),
        ("n2", {"title": "Python tips", "body": "python python python generators", "lang": "py"}),
        ("n3", {"title": "Python vs Rust", "body": "a comparison of two languages", "lang": "py"}),
        ("n4", {"title": "Café notes", "body": ["résumé writing", "and more"], "lang": "fr"}),
        ("n5", {"title": 42, "body": {"not": "text"}}),
    ])
    c.create_text_index(["title", "body"])
    return c


def found(hits):
    return [h.record.id for h in hits]


def test_ranking_and_scores(notes):
    hits = notes.search_text("python")
    assert found(hits) == ["n2", "n3"]   # four mentions beat one
    assert hits[0].score > hits[1].score > 0
    assert hits[0].record.content["title"] == "Python tips"


def test_syntax(notes):
    assert sorted(found(notes.search_text("rust"))) == ["n1", "n3"]
    assert sorted(found(notes.search_text("rust generators"))) == ["n1", "n2", "n3"]  # any word
    assert found(notes.search_text('"python vs"')) == ["n3"]                          # phrase required
    assert found(notes.search_text("python -generators")) == ["n3"]                   # exclusion
    assert sorted(found(notes.search_text("lang*"))) == ["n3"]                        # prefix
    assert found(notes.search_text("cafe resume")) == ["n4"]                          # diacritics folded
    assert sorted(found(notes.search_text("AND OR NOT"))) == ["n1", "n4"]             # words, not FTS5 operators
    assert found(notes.search_text("text")) == ["n5"]                                # strings nested in a field
    assert found(notes.search_text("42")) == []                                      # numbers are not text


def test_filter_and_limit(notes):
    assert sorted(found(notes.search_text("python rust", filter={"lang": "py"}, limit=5))) == ["n2", "n3"]
    assert len(notes.search_text("python rust", limit=1)) == 1
    with pytest.raises(errors.QueryError, match="lang.\\$in"):
        notes.search_text("python", filter={"lang": {"$in": 1}})
    with pytest.raises(errors.QueryError, match="limit"):
        notes.search_text("python", limit=-1)


def test_writes_update_the_index(notes):
    notes.put({"title": "Go channels", "body": "goroutines"}, id="n6")
    assert found(notes.search_text("goroutines")) == ["n6"]
    notes.update("n2", {"title": "Java tips", "body": "beans"})
    assert found(notes.search_text("python")) == ["n3"]
    notes.delete("n3")
    assert found(notes.search_text("python")) == []
    notes.revert("n2", 1)
    assert found(notes.search_text("python")) == ["n2"]
    notes.purge("n2")
    assert found(notes.search_text("python")) == []


def test_rollback_removes_from_the_text_index(store, notes):
    with pytest.raises(RuntimeError):
        with store.transaction():
            notes.put({"title": "zebra"}, id="z")
            notes.update("n1", {"title": "zebra too"})
            assert sorted(found(notes.search_text("zebra"))) == ["n1", "z"]  # reads inside see writes inside
            raise RuntimeError("abort")
    assert found(notes.search_text("zebra")) == []
    assert found(notes.search_text("ownership")) == ["n1"]


def test_one_text_index_per_collection_and_errors(store, notes):
    assert notes.create_text_index(["title", "body"]) == "text"   # same definition: fine
    with pytest.raises(errors.AlreadyExists):
        notes.create_text_index(["title"])
    with pytest.raises(errors.NotFound, match="no text index"):
        store.collection("other").search_text("x")
    with pytest.raises(errors.ValidationError, match="tokenize"):
        store.collection("other").create_text_index(["a"], tokenize="bogus; DROP TABLE docs")
    notes.drop_index("text")
    with pytest.raises(errors.NotFound):
        notes.search_text("python")
    notes.create_text_index(["body"], tokenize="porter unicode61")
    assert found(notes.search_text("borrow")) == ["n1"]   # stemming


@pytest.mark.parametrize("text,message", [
    ('"unclosed', "unclosed quote"), ("", "no words"), ("-only", "no words"), (5, "must be a string"),
])
def test_bad_search_text(notes, text, message):
    with pytest.raises(errors.QueryError, match=message):
        notes.search_text(text)
