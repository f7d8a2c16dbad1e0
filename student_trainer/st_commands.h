/* st_commands: entry points of student_trainer's subcommands (argv[0] is the subcommand name). */
#ifndef ST_COMMANDS_H
#define ST_COMMANDS_H

/* student_trainer eval: accuracy, loss and confusion of a model file or an ensemble of them. */
int st_eval_main(int argc, char **argv);

/* student_trainer distill: distill an ensemble (remote or in-process teachers) into a student. */
int st_distill_main(int argc, char **argv);

/* student_trainer label: stream input files through the teachers into a target store. */
int st_label_main(int argc, char **argv);
/* student_trainer status: every teacher's member info, state and round trip (st_status.c). */
int st_status_main(int argc, char **argv);

/* student_trainer plot: learning curves of distill runs' metrics files, drawn by gnuplot. */
int st_plot_main(int argc, char **argv);

/* student_trainer export: write an edistill model file as an ONNX model. */
int st_export_main(int argc, char **argv);

#endif
