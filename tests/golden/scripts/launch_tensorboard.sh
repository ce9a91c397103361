#!/bin/bash
tensorboard --logdir=param_8h2iDM/all:"<ROOT>/runs/exampleRun/param_8h2iDM/all/lfadsOutput",param_zvPIbr/all:"<ROOT>/runs/exampleRun/param_zvPIbr/all/lfadsOutput",param_8h2iDM/single_dataset001:"<ROOT>/runs/exampleRun/param_8h2iDM/single_dataset001/lfadsOutput",param_zvPIbr/single_dataset001:"<ROOT>/runs/exampleRun/param_zvPIbr/single_dataset001/lfadsOutput"  "$@"
