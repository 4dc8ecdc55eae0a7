from prep.base.packed import open_packed
from prep.frames import run_frames

video = "MoveLeft/v_MoveLeft_g01_c01"
run_frames([(video, f"data/synthetic/raw/videos/{video}.avi")], "packed", pack=True)  # as prep frames --pack
with open_packed(f"packed/{video}.pack") as pack:
    jpeg_bytes = pack.read("img_00001.jpg")   # the bytes the file img_00001.jpg would hold
    print(len(jpeg_bytes), sorted(pack.names())[-2:])
