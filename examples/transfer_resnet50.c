/* Q3d: transfer learning with a frozen ResNet50.
 *
 *   images in [0, 255] -> preprocess_input ("caffe": RGB->BGR, minus the
 *   ImageNet mean) -> model:
 *   input 32x32x3 - Resizing(224, 224) - RandomFlip - RandomRotation(0.2) -
 *   resnet50 (frozen, 7x7x2048, 23,587,712) - Conv2D(64, 3x3, relu)
 *   (5x5x64, 1,179,712) - MaxPooling2D(2) - Flatten (256) - Dropout(0.5) -
 *   Dense(10, softmax) (2,570)
 *   Total 24,769,994 - Trainable 1,182,282 - Non-trainable 23,587,712
 *
 * The backbone is Keras' ResNet50 (v1) with RANDOM weights unless
 * --weights FILE gives torchvision's ImageNet weights exported by
 * scripts/export_torchvision_resnet50.py; the backbone is then the
 * torchvision flavour (v1.5, no conv biases: 26,560 parameters fewer) and
 * the images are preprocessed as torchvision expects ("torch" mode).
 *
 * Data: CIFAR-10 with --data DIR, else Fashion-MNIST, whose 28x28 gray
 * images are repeated into three channels (Resizing takes any size to 224).
 * The assignment's recipe (50,000 images, 10 epochs) takes hours on two
 * cores, so the default is a subset: --train 256 --test 256 --epochs 1
 * --batch-size 16. `transfer_resnet50 --help` lists the options. The
 * model and its input live in common.h (q3d_build, q3d_load), shared with
 * mpi_fit --model resnet-transfer. */
#include "common.h"

static const ex_program PROGRAM = {
    "transfer_resnet50",
    "Q3d: transfer learning with a frozen ResNet50. Images in [0, 255] are\n"
    "preprocessed, resized to 224x224 inside the model, augmented\n"
    "(RandomFlip, RandomRotation(0.2)), passed through ResNet50 without its\n"
    "top (frozen) and a trained head: Conv2D(64, 3x3, relu) -\n"
    "MaxPooling2D(2) - Flatten - Dropout(0.5) - Dense(10, softmax); Adam,\n"
    "validation on the test images.\n"
    "Prints the summary (24,769,994 parameters, 1,182,282 trainable), one\n"
    "line per epoch, the test accuracy and the throughput.\n"
    "The backbone has RANDOM weights unless --weights gives torchvision's\n"
    "(libnn downloads nothing). The full recipe takes hours on two cores,\n"
    "so the defaults are a subset: 256 training and 256 test images,\n"
    "1 epoch, batch 16 (the batch bounds the memory at 224x224).\n"
    "Nothing is written unless --history is given.\n"};

int main(int argc, char **argv)
{
    const train_args defaults = Q3D_TRAIN_ARGS;
    backbone_args a = backbone_parse(argc, argv, &PROGRAM, defaults);
    dataset d;
    q3d_load(&d, &a.t, a.weights);
    int h = (int)nn_tensor_dim(d.x_train, 1);
    int w = (int)nn_tensor_dim(d.x_train, 2);
    printf("libnn %s - %s: %lld training and %lld test images of %dx%dx3, "
           "%s preprocessing\n",
           nn_version(), d.name, (long long)nn_tensor_dim(d.x_train, 0),
           (long long)nn_tensor_dim(d.x_test, 0), h, w,
           a.weights ? "\"torch\"" : "\"caffe\"");
    if (a.weights)
        printf("Backbone: torchvision ResNet50 (v1.5) with the weights of "
               "%s.\nIt has no conv biases, so the totals are 26,560 below "
               "the assignment's.\n", a.weights);
    else
        printf("Backbone: Keras ResNet50 with RANDOM weights (no --weights "
               "given; libnn downloads nothing).\nAccuracy will stay near "
               "chance: this run shows the model, its parameter counts and "
               "the speed.\nExport real weights with "
               "scripts/export_torchvision_resnet50.py.\n");

    nn_model *base = frozen_resnet50(224, a.weights, a.t.seed);
    nn_model *m = q3d_build(base, h, w, a.t.seed);
    print_summary(m);
    fflush(stdout); /* before minutes of training, even into a pipe */
    double t0 = seconds_now();
    nn_history *hist = fit_adam_validated(m, &d, &a.t);
    double train_s = seconds_now() - t0;

    float loss, acc;
    t0 = seconds_now();
    if (nn_model_evaluate(m, d.x_test, d.y_test, a.t.batch_size, &loss,
                          &acc) != NN_OK)
        die("evaluate");
    double test_s = seconds_now() - t0;
    printf("Test loss: %.4f - test accuracy: %.4f\n", loss, acc);
    printf("Throughput: training %.1f img/s (with validation), inference "
           "%.1f img/s\n",
           (double)a.t.epochs * (double)nn_tensor_dim(d.x_train, 0) / train_s,
           (double)nn_tensor_dim(d.x_test, 0) / test_s);
    write_history(hist, a.history);
    nn_history_free(hist);
    nn_model_free(m);
    nn_model_free(base);
    dataset_free(&d);
    return 0;
}
