"""A minimal, valid model artifact directory for unit tests of reportgen stages."""

import hashlib
import json


def make_run(tmp_path, doc, csv_text=None):
    d = tmp_path / "run" / "m"
    d.mkdir(parents=True)
    text = json.dumps(doc, indent=2) + "\n"
    (d / "probe.json").write_text(text)
    arts = [{"path": "probe.json", "kind": "json", "sha256": hashlib.sha256(text.encode()).hexdigest(),
             "bytes": len(text), "lines": text.count("\n")}]
    if csv_text:
        (d / "t.csv").write_text(csv_text)
        arts.append({"path": "t.csv", "kind": "csv", "sha256": hashlib.sha256(csv_text.encode()).hexdigest(),
                     "bytes": len(csv_text), "rows": csv_text.count("\n") - 1, "key_columns": ["layer"]})
    (d / "manifest.json").write_text(json.dumps({"schema_version": "1.0", "artifacts": arts}, indent=2))
    return d
