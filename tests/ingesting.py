"""Put a text into a collection the way the product does: upload, then the whole ingestion
pipeline in this process (real parser child, real embedding model, real index)."""

from __future__ import annotations

from io import BytesIO

from kb.library.ingestion import ingest_version
from kb.library.models import Collection
from kb.library.services import upload_document


def ingest_text(collection: Collection, name: str, text: str) -> int:
    """Returns the document's id once its version is indexed."""
    data = text.encode()
    result = upload_document(
        collection=collection, name=name, stream=BytesIO(data), size=len(data), uploaded_by_id=None
    )
    assert ingest_version(result.version.pk) == "indexed"
    return result.document.pk
