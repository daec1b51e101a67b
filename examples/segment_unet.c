/* Q5: semantic segmentation with a MobileNetV2 U-Net (the TensorFlow
 * segmentation tutorial's model), trained and predicting.
 *
 *   input 128x128x3 - MobileNetV2 encoder (one summary row, skips at
 *   64x64, 32x32, 16x16, 8x8 and 4x4) - four upsample blocks
 *   (Conv2DTranspose - BatchNorm - ReLU, each concatenated with a skip) -
 *   Conv2DTranspose(classes) to 128x128: logits per pixel
 *
 * Data: the synthetic surface defects (binary masks, made in memory) or
 * a manifest CSV (id,image_path,mask_path; see docs/data.md). Training
 * images and masks are flipped left-right together, anew every epoch.
 * Loss: binary cross-entropy + soft IoU by default (--loss), Adam.
 * Reported: per-epoch loss, IoU and validation IoU (fit's segmentation
 * metrics), then the IoU of the defect class on held-out test images.
 * Guide and measured figures: docs/segmentation.md.
 *
 *   segment_unet [--manifest FILE] [--weights FILE] [--freeze-encoder 0|1]
 *                [--classes N] [--loss bce|iou|bce+iou] [--alpha A]
 *                [--flavor keras|torchvision] [--filters F1,F2,F3,F4]
 *                [--head N]
 *                [--epochs N] [--batch-size N] [--lr LR] [--seed S]
 *                [--train N] [--val N] [--test N] [--test-seed S]
 *                [--fresh 0|1]
 *                [--defect-fraction F] [--pos-weight W] [--threads N]
 *                [--save FILE] [--save-encoder FILE] [--overlays DIR]
 *                [--history FILE.csv]
 * (--help lists the defaults; docs/segmentation.md says why they are.)
 * The recipe lives in segment.h, shared with mpi_fit --model unet. */
#include "segment.h"

static const ex_program PROGRAM = {
    "segment_unet",
    "Q5: a U-Net with a MobileNetV2 encoder (the TensorFlow segmentation\n"
    "tutorial's model, 128x128x3) trained with Adam on BCE + IoU and\n"
    "evaluated by the IoU of the defect class on held-out images. Data: the\n"
    "synthetic surface defects made in memory, or --manifest. Without\n"
    "--weights the encoder trains from scratch; the defaults (alpha 0.35, a\n"
    "narrower decoder, 150 epochs of 320 new images) take about six minutes\n"
    "on two cores.\n"
    "Figures and recipes: docs/segmentation.md.\n"};

int main(int argc, char **argv)
{
    seg_args a = seg_parse(argc, argv, &PROGRAM, NULL);
    return seg_run(&a, NULL);
}
