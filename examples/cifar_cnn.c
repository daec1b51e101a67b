/* Q3a: the simple CNN of the assignment, trained end to end.
 *
 *   Conv2D(32, 3x3, relu) - MaxPooling2D(2) - Conv2D(64, 3x3, relu) -
 *   MaxPooling2D(2) - Flatten - Dropout(0.5) - Dense(10, softmax)
 *
 * Categorical cross-entropy, Adam, 10 epochs, batch 128, validation on the
 * test split. CIFAR-10 with --data DIR, Fashion-MNIST otherwise. The model
 * and the training loop live in common.h (q3_main), shared with
 * cifar_augment (Q3b). `cifar_cnn --help` lists the options. */
#include "common.h"

static const ex_program PROGRAM = {
    "cifar_cnn",
    "Q3a: trains the assignment's CNN - Conv2D(32, 3x3, relu) -\n"
    "MaxPooling2D(2) - Conv2D(64, 3x3, relu) - MaxPooling2D(2) - Flatten -\n"
    "Dropout(0.5) - Dense(10, softmax) - prints its summary and one line\n"
    "per epoch, then the test loss and accuracy.\n" Q3_ABOUT_DATA};

int main(int argc, char **argv)
{
    return q3_main(argc, argv, &PROGRAM, NULL);
}
