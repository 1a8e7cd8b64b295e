from quanta.cli.launch import main_exit

main_exit()
