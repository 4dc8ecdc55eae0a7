python -m train.recipe i3d ucf101 rgb                   # i3d_inception, 64 frames, 224, rgb_imagenet.pt, Adam 0.001 @ 64
python -m train.recipe tsm kinetics400 rgb --configfile docs/examples/config/shorter_k400_tsm.yaml
