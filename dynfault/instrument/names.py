"""The names a rewritten module's code uses, shared by the rewriter and the runtime.

A site's flag `_dynfault_f<index>` is a module global (the cheapest read there is: the hot
path); its descriptor `_dynfault_s<index>` is the Site object, which keeps the flag up to date.
"""

FLAG = "_dynfault_f"
DESCRIPTOR = "_dynfault_s"
