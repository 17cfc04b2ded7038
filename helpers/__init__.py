"""bert_workbook: the small shared package that the course notebooks import.

The folder in the repository is ``helpers/``; it is installed under the unique import name
``bert_workbook`` so it never collides with another package called ``helpers``.

Importing this package sets ``HF_HUB_OFFLINE=1`` unless the online setting is on (see
:mod:`bert_workbook.assets`), because the Hugging Face libraries read it at import time.
"""

from bert_workbook.env import configure_hub_access

__version__ = "0.1.0"

configure_hub_access()
