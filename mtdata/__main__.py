from mtdata.cli import main

main()
