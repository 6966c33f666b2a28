# prodigy skseg.export DATASET OUTPUT.rttm [-u OUTPUT.uem] -F recipes/export.py
from skseg.annotation.prodigy import register

export = register("skseg.export")
