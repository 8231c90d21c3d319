"""`requests.adapters`: accepted so that `session.mount(prefix, HTTPAdapter(...))` runs; the
worker's egress sends every request, and retries are the script's to make (docs/actions.md)."""


class BaseAdapter:
    def __init__(self, *args, **kwargs):
        pass

    def close(self):
        pass


class HTTPAdapter(BaseAdapter):
    def __init__(self, pool_connections=10, pool_maxsize=10, max_retries=0, pool_block=False):
        self.max_retries = max_retries
