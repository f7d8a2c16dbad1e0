/* tw_commands: entry points of teacher_worker's subcommands (argv[0] is the subcommand name). */
#ifndef TW_COMMANDS_H
#define TW_COMMANDS_H

/* teacher_worker train: train one ensemble member on labeled data and save its model file. */
int tw_train_main(int argc, char **argv);

/* teacher_worker serve: answer member-info and logit requests for one model over ZeroMQ. */
int tw_serve_main(int argc, char **argv);

/* teacher_worker keygen: write a CurveZMQ key pair (PREFIX.key mode 0600, PREFIX.pub). */
int tw_keygen_main(int argc, char **argv);

/* teacher_worker import: convert an ONNX model into an edistill model file. */
int tw_import_main(int argc, char **argv);

#endif
