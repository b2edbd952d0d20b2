from mtdata.entry import main

main()
