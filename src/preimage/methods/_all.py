"""Every built-in method: its name and its module (under ``preimage.methods``), imported on first
use, where it registers itself. A new method is one line here."""

BUILTIN = {
    "visualize": "visualize",
    "diverse": "cadena.diverse",
    "invariance": "cadena.invariance",
    "reliability": "finzi.reliability",
    "study": "finzi.study",
    "invert": "mahendran.invert",
    "caricature": "mahendran.caricature",
    "maximize": "mahendran.maximize",
    "invert-table": "mahendran.table",
}
