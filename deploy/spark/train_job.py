# SPDX-License-Identifier: Apache-2.0
"""Spark job: read a Parquet dataset, train one model per key with myriad.spark, write
the models as Parquet. Run by deploy/k8s/sparkapplication.yaml; any spark-submit works:

    spark-submit train_job.py --input s3a://bucket/rows/ --output s3a://bucket/models/ \\
        --keys store,item --label units --model forest --params n_trees=20,max_depth=8
"""
import argparse

from pyspark.sql import SparkSession

import myriad.spark


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="Parquet dataset of rows")
    ap.add_argument("--output", required=True, help="where the models go (Parquet)")
    ap.add_argument("--keys", required=True, help="key columns, comma-separated")
    ap.add_argument("--label", required=True)
    ap.add_argument("--features", help="feature columns (default: every numeric one)")
    ap.add_argument("--model", default="linear")
    ap.add_argument("--params", default=None, help="k=v,k=v")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--partitions", type=int, default=None)
    args = ap.parse_args()

    spark = SparkSession.builder.appName("myriad-train").getOrCreate()
    rows = spark.read.parquet(args.input)
    models = myriad.spark.train(
        rows, keys=args.keys.split(","), label=args.label,
        features=args.features.split(",") if args.features else None,
        model=args.model, params=args.params, seed=args.seed,
        num_partitions=args.partitions)
    models.write.mode("overwrite").parquet(args.output)
    failed = models.where("status != 'trained'").count()
    print(f"myriad: models written to {args.output}; {failed} keys failed "
          f"(see their status and error columns)")
    spark.stop()


if __name__ == "__main__":
    main()
