# prodigy skseg.review DATASET SOURCE REFERENCE.rttm -H HYP.rttm -F recipes/review.py
from skseg.annotation.prodigy import register

review = register("skseg.review")
