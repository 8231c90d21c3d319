"""`requests.structures`: the case-insensitive dictionary of headers."""

from collections.abc import Mapping, MutableMapping


class CaseInsensitiveDict(MutableMapping):
    """Header names compare without case; the spelling last given is kept. The methods a
    request uses on every call are written out (the Mapping mixins' generic ones cost a
    job's `requests.get` a third of its time)."""

    __slots__ = ("_store",)

    def __init__(self, data=None, **kwargs):
        if type(data) is CaseInsensitiveDict and not kwargs:
            self._store = data._store.copy()
            return
        self._store = {}
        if data:
            self.update(data)
        if kwargs:
            self.update(kwargs)

    def update(self, data=(), **kwargs):
        store = self._store
        if type(data) is CaseInsensitiveDict:
            store.update(data._store)
        else:
            pairs = data.items() if hasattr(data, "items") else data
            for key, value in pairs:
                store[key.lower()] = (key, value)
        for key, value in kwargs.items():
            store[key.lower()] = (key, value)

    def __setitem__(self, key, value):
        self._store[key.lower()] = (key, value)

    def __getitem__(self, key):
        return self._store[key.lower()][1]

    def __delitem__(self, key):
        del self._store[key.lower()]

    def __contains__(self, key):
        return isinstance(key, str) and key.lower() in self._store

    def get(self, key, default=None):
        pair = self._store.get(key.lower()) if isinstance(key, str) else None
        return default if pair is None else pair[1]

    def pop(self, key, *default):
        pair = self._store.pop(key.lower(), None)
        if pair is None:
            if default:
                return default[0]
            raise KeyError(key)
        return pair[1]

    def setdefault(self, key, default=None):
        pair = self._store.get(key.lower())
        if pair is None:
            self._store[key.lower()] = (key, default)
            return default
        return pair[1]

    def __iter__(self):
        return (original for original, _ in self._store.values())

    def __len__(self):
        return len(self._store)

    def items(self):
        return list(self._store.values())

    def keys(self):
        return [original for original, _ in self._store.values()]

    def values(self):
        return [value for _, value in self._store.values()]

    def __eq__(self, other):
        if isinstance(other, Mapping):
            other = CaseInsensitiveDict(other)
        else:
            return NotImplemented
        return dict(self.lower_items()) == dict(other.lower_items())

    def lower_items(self):
        return ((lower, pair[1]) for lower, pair in self._store.items())

    def copy(self):
        return CaseInsensitiveDict(self)

    def __repr__(self):
        return str(dict(self.items()))


class LookupDict(dict):
    """A name to value lookup read by attribute or by item; an unknown name by item is None."""

    def __init__(self, name=None):
        self.name = name
        super().__init__()

    def __repr__(self):
        return f"<lookup '{self.name}'>"

    def __getitem__(self, key):
        return self.__dict__.get(key, None)

    def get(self, key, default=None):
        return self.__dict__.get(key, default)
