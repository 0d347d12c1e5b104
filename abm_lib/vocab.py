"""The token vocabulary: LaTeX tokens <-> integer ids, saved inside every checkpoint."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_DICTIONARY = Path(__file__).with_name("dictionary.txt")
SOS, EOS = "sos", "eos"


class UnknownTokenError(KeyError):
    """A token that is not in the vocabulary; says which token and where it came from."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of tokens; a token's id is its position (sos=0, eos=1 in the standard one)."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {t: i for i, t in enumerate(self.tokens)})
        for special in (SOS, EOS):
            if special not in self._ids:
                raise ValueError(f"vocabulary has no '{special}' token")

    @classmethod
    def from_file(cls, path: Path | str = DEFAULT_DICTIONARY) -> "Vocabulary":
        """Read a `token<TAB>id` dictionary file (the standard CROHME one by default)."""
        entries = []
        for line_number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            token, index = line.rsplit(maxsplit=1)
            entries.append((int(index), token))
        ids = sorted(i for i, _ in entries)
        if ids != list(range(len(entries))):
            raise ValueError(f"{path}: ids are not 0..{len(entries) - 1} without gaps")
        return cls(tuple(t for _, t in sorted(entries)))

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    @property
    def sos_id(self) -> int:
        return self._ids[SOS]

    @property
    def eos_id(self) -> int:
        return self._ids[EOS]

    def encode(self, tokens: list[str], where: str = "") -> list[int]:
        """Token strings -> ids; an unknown token raises UnknownTokenError naming it."""
        try:
            return [self._ids[t] for t in tokens]
        except KeyError as error:
            place = f" in {where}" if where else ""
            raise UnknownTokenError(f"unknown token {error.args[0]!r}{place}") from None

    def decode(self, ids: list[int]) -> list[str]:
        """Ids -> token strings, stopping at the first eos (sos is dropped)."""
        tokens = []
        for index in ids:
            if index == self.eos_id:
                break
            if index != self.sos_id:
                tokens.append(self.tokens[index])
        return tokens


def default_vocabulary() -> Vocabulary:
    """The standard 113-entry CROHME dictionary used by WAP, BTTR, CoMER and ABM."""
    return Vocabulary.from_file(DEFAULT_DICTIONARY)
