"""``croissant.json``: the set in MLCommons Croissant 1.0 JSON-LD, made from the manifest alone.

The distribution is every shard (a tar, with its sha256 from the manifest) and, inside them, the
per-group ``KEY.json`` members; the record set ``groups`` reads each group's anchor from the member's
name and its metadata (anchor, class, view method) from its content, so a Croissant reader
(``mlcroissant``) lists the set's groups without genviews. (mlcroissant 1.1 reads members of an
archive as raw bytes, so the JSON is a text field rather than one field per key.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.files import write_json_atomic
from shards.card import UNKNOWN, making_of, pretty_name

CROISSANT_NAME = "croissant.json"
_CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "dct": "http://purl.org/dc/terms/",
    "citeAs": "cr:citeAs", "column": "cr:column", "conformsTo": "dct:conformsTo",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet",
    "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField",
    "path": "cr:path", "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex",
    "repeated": "cr:repeated", "replace": "cr:replace", "separator": "cr:separator", "source": "cr:source",
    "subField": "cr:subField", "transform": "cr:transform", "rai": "http://mlcommons.org/croissant/RAI/",
    "samplingRate": "cr:samplingRate", "equivalentProperty": "cr:equivalentProperty",
}
CITE_AS = ("Jahanian, Puig, Tian, Isola. Generative Models as a Data Source for Multiview Representation "
           "Learning. ICLR 2022.")


def croissant(manifest: dict[str, Any]) -> dict[str, Any]:
    shards = [{"@type": "cr:FileObject", "@id": row["name"], "name": row["name"], "contentUrl": row["name"],
               "encodingFormat": "application/x-tar", "contentSize": f"{row['bytes']} B", "sha256": row["sha256"]}
              for row in manifest["shards"]]
    metadata = {"@type": "cr:FileSet", "@id": "group-metadata", "name": "group-metadata",
                "containedIn": [{"@id": row["name"]} for row in manifest["shards"]],
                "encodingFormat": "application/json", "includes": "*.json"}
    fields = [_field("anchor", "sc:Integer", "The group's anchor index, from its 10-digit key.",
                     {"fileProperty": "filename"}, {"regex": "^0*([0-9]+)\\.json$"}),
              _field("metadata", "sc:Text", "The group's JSON: anchor, class (null when unlabelled), view method.",
                     {"fileProperty": "content"})]
    return {
        "@context": _CONTEXT, "@type": "sc:Dataset", "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": pretty_name(manifest),
        "description": _description(manifest),
        "license": manifest.get("license") or UNKNOWN, "url": "manifest.json", "citeAs": CITE_AS,
        "version": f"{manifest.get('version')}.0.0",
        "distribution": [*shards, metadata],
        "recordSet": [{"@type": "cr:RecordSet", "@id": "groups", "name": "groups",
                       "description": "One record per anchor group.", "field": fields}],
    }


def _description(manifest: dict[str, Any]) -> str:
    """The set's description, or what it is; for a synthetic set, what rendered it (generator, sampler, views)."""
    described = manifest.get("description") or (f"A genviews {manifest['kind']} shard set of {manifest['groups']} "
                                                 f"groups x {manifest['views']} views.")
    return f"{described} {making_of(manifest)}" if isinstance(manifest.get("generator"), dict) else described


def _field(name: str, data_type: str, description: str, extract: dict[str, str],
           transform: dict[str, str] | None = None) -> dict[str, Any]:
    source = {"fileSet": {"@id": "group-metadata"}, "extract": extract, **({"transform": transform} if transform else {})}
    return {"@type": "cr:Field", "@id": f"groups/{name}", "name": name, "description": description,
            "dataType": data_type, "source": source}


def write_croissant(folder: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(Path(folder) / CROISSANT_NAME, croissant(manifest))
