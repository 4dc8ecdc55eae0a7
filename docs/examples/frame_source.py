from prep.base.frame_source import count_frames, open_frames

video = "MoveRight/v_MoveRight_g01_c01"
with open_frames("data/synthetic/rawframes", video) as frames:
    print(len(frames))               # from n_frames (or one listing when a tree has no marker)
    print(frames.read(1).shape)      # H×W×3 uint8 RGB; frames.read(1, reduce=2) decodes at half size
with open_frames("data/synthetic/flow", video, "flow") as flow:
    print(flow.read(1).shape)        # H×W×2 uint8 (x, y)
print(count_frames("data/synthetic/flow", video, "flow"))  # N − 1 flow frames for N frames (mmaction naming)
