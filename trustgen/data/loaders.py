"""Load user data (CSV, NumPy ``.npz``) or a built-in dataset together with its schema."""

from __future__ import annotations

import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from trustgen.data.datasets import BUILTIN
from trustgen.data.encoders import Data, ImageData, fit_to_domain, make_encoder, real_array
from trustgen.data.schema import ImageSchema, Schema, TabularSchema, load_schema
from trustgen.errors import DataError, SchemaError


#: How to write an image file trustgen reads, said by every error about one.
NPZ_HOW = ("write one with np.savez(path, x=images, y=labels): x a numeric N x C x H x W array, "
           "y optional whole-number labels")

#: The fewest records trustgen trains on or evaluates. One record has no spread to learn or
#: measure: a model can only reproduce it (without DP it will), and the statistics a report
#: computes (spreads, correlations, held-out splits) are undefined. Two is the fewest that form a
#: distribution; a larger minimum would be a judgement of quality, not of validity (tests and
#: smoke runs train on a handful of rows).
MIN_RECORDS = 2


def read_data_file(path: str | Path, nrows: int | None = None) -> Data:
    """Read a CSV (to a DataFrame) or ``.npz`` with ``x`` and optional ``y`` (to ImageData).

    ``nrows`` reads only that many rows of a CSV (0: just its header). A file that is not what
    its suffix says (not UTF-8 text, ragged rows, duplicate column names, a header without rows,
    a pickle or a bare ``.npy`` named ``.npz``, arrays of objects or text) raises a
    :class:`DataError` naming the file and how to write a proper one."""
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"data {str(p)!r} is neither a built-in dataset ({', '.join(BUILTIN)}) nor an existing file"
        )
    if p.suffix.lower() == ".csv":
        return _read_csv(p, nrows)
    if p.suffix.lower() == ".npz":
        return _read_npz(p)
    raise DataError(f"unsupported data file {str(p)!r}: use .csv (tables) or .npz (images, arrays x and y)")


def _read_csv(p: Path, nrows: int | None) -> pd.DataFrame:
    try:
        # The header as written: pandas renames a repeated name "a" to "a.1", which would pass as a column.
        header = pd.read_csv(p, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
        with warnings.catch_warnings():
            # Rows longer than the header: pandas would take their surplus leading values as an index
            # (index_col=None) or drop the trailing ones with only this warning (index_col=False).
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(p, nrows=nrows, index_col=False)
    except pd.errors.ParserWarning as e:
        raise DataError(f"the rows of {str(p)!r} have more values than its header has names ({len(header)}): a "
                        "value holds an unquoted comma, or the header lacks a name") from e
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{str(p)!r} is empty") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{str(p)!r} is not UTF-8 text (line {_first_non_utf8_line(p)} is not): save it as "
                        "UTF-8 (e.g. \"CSV UTF-8\" in a spreadsheet's Save As), or give an image file as .npz") from e
    except pd.errors.ParserError as e:
        detail = " ".join(str(e).split()).removeprefix("Error tokenizing data. C error: ")
        raise DataError(f"{str(p)!r} is not a well-formed CSV ({detail}): every row needs one value per header "
                        "name; quote values that contain commas or quotes") from e
    duplicates = sorted({n for n in header if n != "" and header.count(n) > 1})
    if duplicates:
        raise DataError(f"{str(p)!r} names columns {duplicates} more than once in its header: give each column "
                        "one name")
    if nrows is None and len(df) == 0:
        raise DataError(f"{str(p)!r} has a header but no rows: nothing to train on or evaluate")
    return df


def _first_non_utf8_line(p: Path) -> int:
    """The number of the first line of ``p`` that is not UTF-8 (a UTF-8 character never holds a newline byte)."""
    with open(p, "rb") as f:
        for i, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return i
    return 0


def _read_npz(p: Path) -> ImageData:
    try:
        z = np.load(p, allow_pickle=False)  # never unpickle: a data file must not run code
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{str(p)!r} is {_what_file(p)}, not a NumPy .npz archive; {NPZ_HOW}") from e
    if not hasattr(z, "files"):  # np.load gives a bare array for the .npy format
        raise DataError(f"{str(p)!r} is a single NumPy array (.npy format) named .npz; {NPZ_HOW}")
    with z:
        if "x" not in z.files:
            raise DataError(f"{str(p)!r} has no array 'x' (found {z.files}); {NPZ_HOW}")
        x = _npz_member(z, "x", p)
        y = _npz_member(z, "y", p) if "y" in z.files else None
    real_array(x, f"array 'x' of {str(p)!r}")
    if y is not None:
        real_array(y, f"array 'y' of {str(p)!r}")
    return ImageData(x, y)


def _npz_member(z, key: str, p: Path) -> np.ndarray:
    try:
        a = z[key]
    except ValueError as e:  # allow_pickle=False refuses an object array; or its header is damaged
        what = "holds Python objects (an object array, stored as a pickle)" if _holds_objects(z, key) else "is damaged"
        raise DataError(f"array {key!r} of {str(p)!r} {what}; {NPZ_HOW}") from e
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"array {key!r} of {str(p)!r} is damaged (truncated or corrupted); {NPZ_HOW}") from e
    if not isinstance(a, np.ndarray):  # a member that is not in .npy format comes back as bytes
        raise DataError(f"member {key!r} of {str(p)!r} is not a NumPy array; {NPZ_HOW}")
    return a


def _holds_objects(z, key: str) -> bool:
    """Whether member ``key`` of an open npz declares an object dtype (read from its header only)."""
    try:
        with z.zip.open(f"{key}.npy") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return read(f)[2].hasobject
    except Exception:  # an unreadable header: damaged, not objects
        return False


def _what_file(p: Path) -> str:
    """What a file that is not an .npz archive is, from its first bytes."""
    with open(p, "rb") as f:
        head = f.read(8)
    if not head:
        return "empty (0 bytes)"
    if head.startswith(b"PK"):
        return "a damaged zip archive (truncated or corrupted)"
    if head.startswith(b"\x80"):
        return "a Python pickle (trustgen never unpickles data: it can run code)"
    return "not a NumPy file"


def load_data(source: str | Path, schema: Schema | str | Path | None = None, *,
              labels_optional: bool = False) -> tuple[Data, Schema]:
    """Load a built-in dataset by name or a user file, and check it against its schema.

    Args:
        source: ``"digits"``, ``"breast_cancer"``, ``"randhie"`` or a ``.csv`` / ``.npz`` path.
        schema: a Schema or a path to a schema JSON. Required for user files: trustgen never
            derives a schema from private data silently (see ``trustgen schema infer``).
        labels_optional: for callers that never read the labels and score rows one by one
            (``trustgen score``): a file without the label column (or ``y``) gets the first
            class as a placeholder, so it can be encoded, and a single row is accepted;
            without it such a file is refused.

    Returns:
        The data and its schema, already validated (errors are raised before any training). For
        a DP-estimated schema (``source="dp"``) the data is first mapped into its domain
        (:func:`~trustgen.data.encoders.fit_to_domain`).
    """
    if isinstance(schema, (str, Path)):
        schema = load_schema(schema)
    name = str(source)
    if name in BUILTIN:
        data, builtin_schema = BUILTIN[name]()
        schema = schema or builtin_schema
    else:
        data = read_data_file(source)
        if schema is None:
            raise SchemaError(
                f"no schema given for {name!r}. Declare the public domain of every column "
                f"(bounds, categories, label) in a JSON schema; `trustgen schema infer {name}` "
                "drafts one for you to review (a data-derived draft is not private)."
            )
    kind_ok = isinstance(data, ImageData) == isinstance(schema, ImageSchema)
    if not kind_ok:
        want = "image" if isinstance(schema, ImageSchema) else "tabular"
        raise SchemaError(f"the schema is for {want} data but {name!r} holds the other kind")
    if labels_optional:
        data = _placeholder_labels(data, schema)
    data = fit_to_domain(data, schema)  # a DP schema's bounds clip rows by design
    make_encoder(schema).validate(data)
    check_record_count(data, name, 1 if labels_optional else MIN_RECORDS)
    return data, schema


def _placeholder_labels(data: Data, schema: Schema) -> Data:
    if schema.n_classes == 0:
        return data
    if isinstance(data, ImageData):
        return data if data.y is not None else ImageData(data.x, np.zeros(len(data.x), dtype=np.int64))
    if schema.label not in data.columns:
        return data.assign(**{schema.label: schema.classes[0]})
    return data


def check_record_count(data: Data, name: str, least: int | None = None) -> None:
    """Refuse data with fewer than ``least`` (default :data:`MIN_RECORDS`) records (files and
    in-memory data alike)."""
    least = MIN_RECORDS if least is None else least
    if len(data) < least:
        why = "to score" if least == 1 else "to train on or evaluate (one record has no distribution to learn)"
        raise DataError(f"{name!r} holds {len(data)} record{'s' if len(data) != 1 else ''}; trustgen needs at least "
                        f"{least} {why}")


def infer_schema(data: Data, label: str | None = None, max_categories: int = 20) -> Schema:
    """Draft a schema from the data itself, marked ``source="data-derived"``.

    This reads the private data (min, max, unique values), so it is *not* differentially
    private: review the draft, replace bounds with public knowledge, and set ``source`` to
    ``"declared"`` once you have. Training with a data-derived schema records a caveat.
    """
    from trustgen.data.datasets import round_up_bound
    from trustgen.data.schema import MAX_EXACT_INTEGER, CategoricalColumn, NumericColumn

    if isinstance(data, ImageData):
        x = np.asarray(data.x)
        if x.ndim != 4:
            raise DataError(f"images must be N x C x H x W, got shape {x.shape}")
        lo, hi = float(x.min()), float(x.max())
        lo, hi = (0.0, 1.0) if lo >= 0 and hi <= 1 else (0.0, 255.0) if lo >= 0 and hi <= 255 else (lo, hi)
        classes = None if data.y is None else tuple(str(i) for i in range(int(np.max(data.y)) + 1))
        return ImageSchema(x.shape[1], x.shape[2], x.shape[3], lo, hi, classes, "data-derived")
    if len(data) == 0:
        raise DataError("the data is empty (0 rows)")
    cols = []
    for name in data.columns:
        col = data[name].dropna()
        numeric = pd.api.types.is_numeric_dtype(col)
        if name == label or not numeric or (pd.api.types.is_integer_dtype(col) and col.nunique() <= 2):
            cats = sorted(col.unique().tolist(), key=str)
            if len(cats) > max_categories and name != label:
                raise DataError(f"column {name!r} has {len(cats)} distinct text values; too many for a category list")
            cats = [c.item() if hasattr(c, "item") else c for c in cats]
            if len(cats) == 1:
                cats.append("other")
            cols.append(CategoricalColumn(name, tuple(str(c) if not isinstance(c, (int, str)) else c for c in cats)))
        else:
            lo, hi = float(col.min()), float(col.max())
            lo = 0.0 if lo >= 0 else -round_up_bound(-lo)
            hi = round_up_bound(hi) if hi > 0 else 0.0
            if hi <= lo:
                hi = lo + 1.0
            # integers beyond 2^53 (timestamps, 64-bit ids) are drafted as plain numbers: a float holds them only roughly
            whole = pd.api.types.is_integer_dtype(col) and max(abs(lo), abs(hi)) <= MAX_EXACT_INTEGER
            cols.append(NumericColumn(name, lo, hi, integer=whole))
    return TabularSchema(cols, label, "data-derived")
