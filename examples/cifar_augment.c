/* Q3b: the Q3a CNN with data augmentation as layers inside the model,
 * right after the input:
 *
 *   RandomFlip("horizontal_and_vertical") - RandomRotation(0.2) -
 *   Conv2D(32, 3x3, relu) - MaxPooling2D(2) - Conv2D(64, 3x3, relu) -
 *   MaxPooling2D(2) - Flatten - Dropout(0.5) - Dense(10, softmax)
 *
 * The two layers transform each training image at random (a flip of each
 * axis with probability 1/2, an angle uniform in [-0.2, 0.2] * 2 pi,
 * reflect fill, bilinear sampling) and are the identity in evaluation.
 * Same recipe and options as cifar_cnn; its --history CSV goes with
 * cifar_cnn's into tools/plot_history.py for the Q3c comparison
 * (`make curves`). */
#include "common.h"

static const ex_program PROGRAM = {
    "cifar_augment",
    "Q3b: the Q3a CNN of cifar_cnn behind RandomFlip(\"horizontal_and_\n"
    "vertical\") and RandomRotation(0.2), which transform each training\n"
    "image at random and pass evaluation images through unchanged.\n"
    Q3_ABOUT_DATA
    "`make curves` compares its history with cifar_cnn's (Q3c).\n"};

static nn_layer *augmentation(nn_model *m, nn_layer *x)
{
    x = nn_random_flip(m, x, NN_FLIP_HORIZONTAL_AND_VERTICAL, NULL);
    return nn_random_rotation(m, x, -0.2f, 0.2f, NULL);
}

int main(int argc, char **argv)
{
    return q3_main(argc, argv, &PROGRAM, augmentation);
}
