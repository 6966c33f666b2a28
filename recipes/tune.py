# prodigy skseg.tune DATASET OUTPUT.joblib -F recipes/tune.py
from skseg.annotation.prodigy import register

tune = register("skseg.tune")
