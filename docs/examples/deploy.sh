python -m train.export work/i3d_synthetic_rgb/final.pt exported/i3d_rgb  # i3d_rgb.pt2, .json (+ .onnx: pip install -e .[export])
python -m train.predict data/synthetic/raw/videos/MoveRight/v_MoveRight_g02_c01.mp4 --checkpoint work/i3d_synthetic_rgb/final.pt --top 3
python -m train.predict data/synthetic/rawframes/MoveRight/v_MoveRight_g01_c01 --checkpoint work/i3d_synthetic_rgb/final.pt
python -m train.predict data/synthetic/flow/MoveRight/v_MoveRight_g01_c01 --checkpoint work/i3d_synthetic_flow/final.pt
