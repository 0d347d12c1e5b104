"""Where a recogniser goes wrong, from the per-expression records of an evaluation report.

A record (abm_lib.evaluation) holds the prediction and the references as space-separated
token strings, and the edit distance per label set. The edit operations that turn the
prediction into the reference (rapidfuzz's Levenshtein.editops) name each error:

    replace (i, j)  the reference token j was read as prediction token i   (substitution)
    insert  (i, j)  the reference token j is missing from the prediction   (deletion)
    delete  (i, j)  the prediction token i is not in the reference         (insertion)

When several alignments have the same cost, editops picks one of them; counts per token are
therefore one consistent reading of the errors, not the only one.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rapidfuzz.distance import Levenshtein


@dataclass
class TokenErrors:
    """Error counts per token over a set of records."""

    occurrences: Counter = field(default_factory=Counter)  # reference token -> times in the references
    substituted: Counter = field(default_factory=Counter)  # reference token -> times read as another token
    missed: Counter = field(default_factory=Counter)  # reference token -> times left out
    spurious: Counter = field(default_factory=Counter)  # predicted token -> times predicted in excess
    confusions: Counter = field(default_factory=Counter)  # (reference token, predicted token) -> times

    def rows(self, top: int = 15) -> list[dict]:
        """The reference tokens most often wrong (substituted or missed), with their error share."""
        wrong = self.substituted + self.missed
        rows = []
        for token, errors in wrong.most_common(top):
            read_as = [(p, n) for (r, p), n in self.confusions.most_common() if r == token][:1]
            rows.append({"token": token, "errors": errors, "occurrences": self.occurrences[token],
                         "share": errors / self.occurrences[token] if self.occurrences[token] else float("nan"),
                         "substituted": self.substituted[token], "missed": self.missed[token],
                         "most_often_read_as": read_as[0][0] if read_as else None})
        return rows


def token_errors(records: list[dict], label_set: str = "v1") -> TokenErrors:
    """Count the edit operations of every record that has a reference in `label_set`."""
    errors = TokenErrors()
    for record in records:
        if label_set not in record["references"]:
            continue
        prediction = record["prediction"].split()
        reference = record["references"][label_set].split()
        errors.occurrences.update(reference)
        for operation, i, j in Levenshtein.editops(prediction, reference).as_list():
            if operation == "replace":
                errors.substituted[reference[j]] += 1
                errors.confusions[(reference[j], prediction[i])] += 1
            elif operation == "insert":
                errors.missed[reference[j]] += 1
            else:  # delete
                errors.spurious[prediction[i]] += 1
    return errors


def errors_by_length(records: list[dict], label_set: str = "v1",
                     edges: tuple[int, ...] = (0, 6, 11, 16, 21, 31, 51)) -> list[dict]:
    """ExpRate and mean edit distance per reference length bin [edges[k], edges[k+1]), the last one open;
    empty bins are left out."""
    bins = []
    for k, low in enumerate(edges):
        high = edges[k + 1] if k + 1 < len(edges) else None
        chosen = [r["distances"][label_set] for r in records if label_set in r["references"]
                  and low <= len(r["references"][label_set].split()) and (high is None or
                  len(r["references"][label_set].split()) < high)]
        if chosen:
            bins.append({"tokens": f"{low}-{high - 1}" if high else f"{low}+", "count": len(chosen),
                         "exp_rate": 100.0 * sum(d == 0 for d in chosen) / len(chosen),
                         "mean_distance": sum(chosen) / len(chosen)})
    return bins


def wrong_examples(records: list[dict], label_set: str = "v1", count: int = 4,
                   available: set[str] | None = None) -> list[dict]:
    """Up to `count` misrecognised records, nearest misses first (fewest edits, then shortest),
    among the ids in `available` if given (e.g. those whose images are at hand)."""
    wrong = [r for r in records if r["distances"].get(label_set, 0) > 0
             and (available is None or r["id"] in available)]
    wrong.sort(key=lambda r: (r["distances"][label_set], len(r["references"][label_set].split()), r["id"]))
    return wrong[:count]
