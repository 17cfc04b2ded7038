"""bert_workbook: the small shared package that the course notebooks import.

The folder in the repository is ``helpers/bert_workbook/``: the folder says the name the package
is imported under.

Importing this package sets ``HF_HUB_OFFLINE=1`` unless the online setting is on (see
:mod:`bert_workbook.assets`), because the Hugging Face libraries read it at import time.
"""

from bert_workbook.env import configure_hub_access

__version__ = "0.1.0"

configure_hub_access()
