#!/bin/bash
source activate tf1
tensorboard --logdir=param_zvPIbr/single_dataset001:"<ROOT>/runs/exampleRun/param_zvPIbr/single_dataset001/lfadsOutput"  "$@"
