"""HMDB51 and Kinetics-400 readers on tiny hand-written annotation files."""
import pytest

from prep import UserError
from prep.base.sources import read_url_list
from prep.datasets import hmdb51, kinetics400

ODD_VIDEO = "Prelinger_HabitPat1954_brush_hair_f_nm_np1_ba_med_3 & (Ann's) !;,+.avi"


def write(path, text, crlf=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", "\r\n" if crlf else "\n").encode("utf-8"))
    return path


# ---------------------------------------------------------------------------------------------------------------------
# HMDB51


@pytest.fixture
def hmdb_splits(tmp_path):
    root = tmp_path / "testTrainMulti_7030_splits"
    for split in "123":
        # official files carry a trailing space on every line; these are CRLF as well
        write(root / f"wave_test_split{split}.txt",
              f"wave_a.avi {1 if split != '3' else 2} \nwave_b.avi 2 \n", crlf=True)
        write(root / f"brush_hair_test_split{split}.txt",
              f"{ODD_VIDEO} {split if split != '3' else 0} \n\nbrush_hair_x.avi 1\n", crlf=True)
    return tmp_path  # the reader also looks one folder down, as test_train_splits.rar extracts


def test_hmdb51_splits(hmdb_splits):
    index = hmdb51.read_index(hmdb_splits)
    assert index.name == "hmdb51" and index.classes == ["brush_hair", "wave"] and index.split_names == ["1", "2", "3"]
    by_id = {v.video_id: v for v in index.videos}
    odd = by_id["brush_hair/" + ODD_VIDEO[:-4]]
    assert odd.path == "brush_hair/" + ODD_VIDEO and odd.class_name == "brush_hair"
    assert odd.splits == {"1": "train", "2": "test", "3": "unused"}
    assert by_id["wave/wave_a"].splits == {"1": "train", "2": "train", "3": "test"}
    assert by_id["wave/wave_b"].splits == {"1": "test", "2": "test", "3": "test"}
    assert index.label_of("wave") == 1 and len(index.videos) == 4
    assert [v.video_id for v in index.videos] == sorted(by_id)


def test_hmdb51_one_split_and_errors(hmdb_splits, tmp_path):
    assert hmdb51.read_index(hmdb_splits, splits=["2"]).split_names == ["2"]
    (hmdb_splits / "testTrainMulti_7030_splits" / "wave_test_split3.txt").unlink()
    with pytest.raises(UserError, match="class 'wave' has no split file for split.* 3"):
        hmdb51.read_index(hmdb_splits)
    bad = write(tmp_path / "bad" / "run_test_split1.txt", "run_a.avi 7\n")
    with pytest.raises(UserError, match=f"{bad}: line 1"):
        hmdb51.read_index(bad.parent)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(UserError, match="no <class>_test_split"):
        hmdb51.read_index(tmp_path / "empty")
    with pytest.raises(UserError, match="not found"):
        hmdb51.read_index(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------------------------------
# Kinetics-400

TRAIN_CSV = '''label,youtube_id,time_start,time_end,split
abseiling,--07WQ2iBlw,1,11,train
"passing American football (in game)",-_1WdVQ8pTs,5,15,train
massaging person's head,3Kc1bbWp1Ec,0,10,train
"say ""cheese""",zzz_Y-aBc1,112,122,train
'''
VAL_CSV = '''label,youtube_id,time_start,time_end,split
abseiling,0wR5jVB-WPk,417,427,val
massaging person's head,abc,7.0,17.0,val
'''
TEST_CSV = '''youtube_id,time_start,time_end,split
notlabeled1,0,10,test
'''


@pytest.fixture
def k400_csvs(tmp_path):
    root = tmp_path / "annotations"
    write(root / "train.csv", TRAIN_CSV, crlf=True)
    write(root / "validate.csv", VAL_CSV)
    write(root / "test.csv", TEST_CSV)
    return root


def test_kinetics_annotations(k400_csvs):
    index = kinetics400.read_index(k400_csvs)
    assert index.classes == ["abseiling", "massaging person's head", "passing American football (in game)",
                             'say "cheese"']
    assert index.split_names == ["1"] and len(index.videos) == 6  # the unlabelled test row is skipped
    by_id = {v.video_id: v for v in index.videos}
    # class folders in mmaction2's form (rename_classnames.sh: spaces -> _), labels as written
    clip = by_id["passing_American_football_(in_game)/-_1WdVQ8pTs_000005_000015"]
    assert clip.path == "passing_American_football_(in_game)/-_1WdVQ8pTs_000005_000015.mp4"
    assert clip.class_name == "passing American football (in game)"
    assert clip.splits == {"1": "train"}
    assert by_id["massaging_person's_head/abc_000007_000017"].splits == {"1": "test"}
    assert by_id['say_"cheese"/zzz_Y-aBc1_000112_000122'].class_name == 'say "cheese"'
    as_labels = kinetics400.read_index(k400_csvs, class_folders="label")
    assert "passing American football (in game)/-_1WdVQ8pTs_000005_000015" in {v.video_id for v in as_labels.videos}
    assert kinetics400.clip_name("x", 1, 11) == "x_000001_000011.mp4"
    only_train = kinetics400.read_index([k400_csvs / "train.csv"])
    assert {v.splits["1"] for v in only_train.videos} == {"train"}


def test_kinetics_bad_csv(tmp_path):
    bad = write(tmp_path / "x.csv", "label,youtube_id,time_start,time_end,split\na,b,one,2,train\n")
    with pytest.raises(UserError, match="line 2: time_start 'one'"):
        kinetics400.read_index(bad)
    bad.write_text("name,url\na,b\n")
    with pytest.raises(UserError, match="not a Kinetics CSV"):
        kinetics400.read_index(bad)


def test_locate_clips(k400_csvs, tmp_path):
    index = kinetics400.read_index(k400_csvs)
    videos = tmp_path / "videos"
    write(videos / "abseiling" / "--07WQ2iBlw_000001_000011.mp4", "data")
    write(videos / "passing_American_football_-in_game-" / "-_1WdVQ8pTs_000005_000015.mkv", "data")
    write(videos / "0wR5jVB-WPk_000417_000427.webm", "data")  # flat
    write(videos / "massaging person's head" / "3Kc1bbWp1Ec_000000_000010.mp4", "")  # empty
    write(videos / "wrong class" / "abc_000007_000017.mp4", "data")  # not its class folder
    found, missing = kinetics400.locate_videos(index, videos)
    assert {k: v.relative_to(videos).as_posix() for k, v in found.items()} == {
        "abseiling/--07WQ2iBlw_000001_000011": "abseiling/--07WQ2iBlw_000001_000011.mp4",
        "passing_American_football_(in_game)/-_1WdVQ8pTs_000005_000015":
            "passing_American_football_-in_game-/-_1WdVQ8pTs_000005_000015.mkv",
        "abseiling/0wR5jVB-WPk_000417_000427": "0wR5jVB-WPk_000417_000427.webm",
    }
    reasons = dict(missing)
    assert reasons["massaging_person's_head/3Kc1bbWp1Ec_000000_000010"].startswith("empty file")
    assert reasons["massaging_person's_head/abc_000007_000017"] == "not found"
    assert reasons['say_"cheese"/zzz_Y-aBc1_000112_000122'] == "not found"
    assert len(found) + len(missing) == len(index.videos)


def test_read_link_list(tmp_path):
    """PaddleVideo's link lists are read by the one URL-list reader."""
    path = write(tmp_path / "train_link.list", "# parts\nhttps://example.org/k400/train_part1.tar\n\n"
                 "https://example.org/k400/train_part2.tar  \n", crlf=True)
    assert read_url_list(path) == ["https://example.org/k400/train_part1.tar",
                                    "https://example.org/k400/train_part2.tar"]
    write(path, "train_part1.tar\n")
    with pytest.raises(UserError, match="line 1"):
        read_url_list(path)


# ---------------------------------------------------------------------------------------------------------------------
# unique video ids, the dataset registry


def test_two_files_with_one_stem_are_an_error_naming_both(tmp_path):
    from prep.datasets import class_folder_videos, ucf101
    from tests.conftest import run_prep

    splits = tmp_path / "splits"
    write(splits / "classInd.txt", "1 Wave\n")
    write(splits / "trainlist01.txt", "Wave/v_Wave_g01_c01.avi 1\n")
    write(splits / "testlist01.txt", "Wave/v_Wave_g01_c01.mp4\n")
    with pytest.raises(UserError, match=r"'Wave/v_Wave_g01_c01.avi' and 'Wave/v_Wave_g01_c01.mp4' have the same "
                                        r"video id 'Wave/v_Wave_g01_c01'"):
        ucf101.read_index(splits)
    videos = tmp_path / "videos"
    write(videos / "Wave" / "a.avi", "x")
    write(videos / "Wave" / "a.AVI", "x")
    with pytest.raises(UserError, match=r"Wave/a.AVI and .*Wave/a.avi have one video id \('Wave/a'\)"):
        class_folder_videos(videos, (".avi",))
    write(videos / "Wave" / "a.mp4", "x")
    result = run_prep("frames", videos, tmp_path / "rawframes", check=False)  # discovered, not listed
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Wave/a.AVI and" in result.stderr and "have one video id ('Wave/a')" in result.stderr
    assert not (tmp_path / "rawframes").exists()


@pytest.mark.parametrize("split", [2, "2"])
def test_split_as_number_or_string(split, tmp_path):
    from tests.conftest import snakemake

    result = snakemake(tmp_path, "all", "-n", "-p", "--config", f"split={split!r}")  # split=2 or split='2'

    assert "synthetic_train_split_2_rawframes.txt" in result.stdout
    assert "synthetic_train_split_1" not in result.stdout
