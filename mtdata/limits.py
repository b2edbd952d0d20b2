"""The bounds every reader applies to numbers it takes from a stranger's file, in one place.

A size read from a file (keypoints per object, image pixels) is checked against these before anything is
allocated from it, by every command alike: what ``mtdata check`` accepts, convert, export, merge and the
trainer accept too.
"""

# Keypoints per object: kpt_shape's K in data.yaml, a COCO category's keypoint list, a checkpoint's kpt_shape.
# COCO-WholeBody has 133, a MediaPipe face mesh 478.
MAX_KEYPOINTS = 1024

# Pixels of one image (and of one RLE mask, which covers its image): Pillow's default decompression-bomb limit
# (Image.MAX_IMAGE_PIXELS = 1024 * 1024 * 1024 // 4 // 3), fixed here so that a library that lifts Pillow's
# (ultralytics' compress_one_image sets it to None) changes nothing. Training resizes to 640 pixels: an image
# this large is a mistake or an attack.
MAX_IMAGE_PIXELS = 89_478_485

# A polygon enclosing less than this share of its image's area encloses nothing (collinear or repeated points):
# check's zero_area, convert's and export's zero-area polygons alike.
ZERO_AREA = 1e-12
